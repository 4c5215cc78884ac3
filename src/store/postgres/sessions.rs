//! What the nodes of one database share besides the data: dashboard
//! sessions (`sessions`), the admin token's hash and the secret key's
//! canary (`shared_settings`), and the reachability check `/healthz` asks.
//!
//! Sessions are read from the database on every request, never cached on
//! a node: a logout on one node must end the session on every other at
//! once. That is one indexed primary-key read per dashboard request.

use super::PgStore;
use crate::domain::ids::SourceId;
use crate::domain::sealed::SealedSecret;
use crate::domain::source::SecretHash;
use crate::store::{SessionFlash, SessionRecord, SharedValue, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one `SELECT 1` answers `/healthz` for: a load balancer asking
/// every node often costs the database one query a second per node.
const REACHABILITY_TTL: Duration = Duration::from_secs(1);
/// A check that takes longer counts as unreachable (a database behind a
/// dropped network does not refuse, it stays silent).
const REACHABILITY_TIMEOUT: Duration = Duration::from_secs(2);

/// The `shared_settings` rows.
const ADMIN_TOKEN: &str = "admin_token";
const KEY_CANARY: &str = "secret_key_canary";

/// The node's last reachability check, for `/healthz`.
#[derive(Default)]
pub(crate) struct Reachability {
    /// When it was checked, and the error it failed with.
    last: Mutex<Option<(Instant, Option<String>)>>,
}

impl Reachability {
    /// The cached outcome while it is fresh.
    fn fresh(&self) -> Option<Option<String>> {
        let last = self.last.lock().ok()?;
        match &*last {
            Some((at, outcome)) if at.elapsed() < REACHABILITY_TTL => Some(outcome.clone()),
            _ => None,
        }
    }

    fn remember(&self, outcome: Option<String>) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), outcome));
        }
    }
}

type SessionRow = (String, DateTime<Utc>);

impl PgStore {
    /// Inserts the session and drops expired ones in the same round trip.
    pub(super) fn start_session(
        &self,
        key: &SecretHash,
        session: &SessionRecord,
    ) -> StoreResult<()> {
        self.db.block(async {
            sqlx::query(
                "WITH expired AS (DELETE FROM sessions WHERE expires_at <= now()) \
                 INSERT INTO sessions (key, csrf, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET csrf = excluded.csrf, \
                 expires_at = excluded.expires_at, flash_source = NULL, flash_sealed = NULL",
            )
            .bind(&key.0)
            .bind(&session.csrf)
            .bind(session.expires)
            .execute(&self.db.pool)
            .await?;
            Ok(())
        })
    }

    pub(super) fn live_session(
        &self,
        key: &SecretHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>> {
        let row: Option<SessionRow> = self.db.block(async {
            sqlx::query_as(
                "SELECT csrf, expires_at FROM sessions WHERE key = $1 AND expires_at > $2",
            )
            .bind(&key.0)
            .bind(now)
            .fetch_optional(&self.db.pool)
            .await
        })?;
        Ok(row.map(|(csrf, expires)| SessionRecord { csrf, expires }))
    }

    pub(super) fn end_session(&self, key: &SecretHash) -> StoreResult<()> {
        self.db.block(async {
            sqlx::query("DELETE FROM sessions WHERE key = $1")
                .bind(&key.0)
                .execute(&self.db.pool)
                .await?;
            Ok(())
        })
    }

    pub(super) fn set_session_flash(
        &self,
        key: &SecretHash,
        flash: &SessionFlash,
    ) -> StoreResult<()> {
        self.db.block(async {
            sqlx::query("UPDATE sessions SET flash_source = $2, flash_sealed = $3 WHERE key = $1")
                .bind(&key.0)
                .bind(flash.source.0)
                .bind(Json(&flash.sealed))
                .execute(&self.db.pool)
                .await?;
            Ok(())
        })
    }

    /// Empties the slot and returns what it held in one statement, only
    /// when it holds `source`'s flash: two pages asking at once cannot
    /// both get it.
    pub(super) fn take_session_flash(
        &self,
        key: &SecretHash,
        source: SourceId,
    ) -> StoreResult<Option<SealedSecret>> {
        let taken: Option<Json<SealedSecret>> = self.db.block(async {
            sqlx::query_scalar(
                "WITH old AS ( \
                   SELECT key, flash_sealed FROM sessions \
                   WHERE key = $1 AND flash_source = $2 AND expires_at > now() FOR UPDATE) \
                 UPDATE sessions s SET flash_source = NULL, flash_sealed = NULL \
                 FROM old WHERE s.key = old.key RETURNING old.flash_sealed",
            )
            .bind(&key.0)
            .bind(source.0)
            .fetch_optional(&self.db.pool)
            .await
        })?;
        Ok(taken.map(|Json(sealed)| sealed))
    }

    pub(super) fn prune_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.db.block(async {
            let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now)
                .execute(&self.db.pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// `configured`: the operator's token replaces the stored one (so a
    /// token set on one node is what the others accept too). Else the
    /// first node's insert wins and every later one reads it.
    pub(super) fn share_admin_token(
        &self,
        proposed: &SecretHash,
        configured: bool,
    ) -> StoreResult<SharedValue<SecretHash>> {
        if configured {
            self.db.block(async {
                sqlx::query(
                    "INSERT INTO shared_settings (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value, set_at = now()",
                )
                .bind(ADMIN_TOKEN)
                .bind(Json(proposed))
                .execute(&self.db.pool)
                .await?;
                Ok::<_, StoreError>(())
            })?;
            return Ok(SharedValue {
                value: proposed.clone(),
                ours: true,
            });
        }
        self.share_first(ADMIN_TOKEN, proposed)
    }

    pub(super) fn share_key_canary(
        &self,
        proposed: &SealedSecret,
    ) -> StoreResult<SharedValue<SealedSecret>> {
        self.share_first(KEY_CANARY, proposed)
    }

    /// Stores `proposed` under `name` unless a value is there
    /// (`ON CONFLICT DO NOTHING`: of nodes starting together one insert
    /// wins), then reads what is stored.
    fn share_first<T>(&self, name: &'static str, proposed: &T) -> StoreResult<SharedValue<T>>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Unpin + 'static,
    {
        let (inserted, Json(value)): (u64, Json<T>) = self.db.block(async {
            let inserted = sqlx::query(
                "INSERT INTO shared_settings (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(Json(proposed))
            .execute(&self.db.pool)
            .await?
            .rows_affected();
            let stored: Json<T> =
                sqlx::query_scalar("SELECT value FROM shared_settings WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.db.pool)
                    .await?;
            Ok::<_, StoreError>((inserted, stored))
        })?;
        Ok(SharedValue {
            value,
            ours: inserted == 1,
        })
    }

    /// `SELECT 1`, at most once a [`REACHABILITY_TTL`] (see `Reachability`).
    pub(super) fn check_reachable(&self) -> StoreResult<()> {
        let outcome = match self.reachability.fresh() {
            Some(outcome) => outcome,
            None => {
                let outcome = self.select_one().err();
                self.reachability.remember(outcome.clone());
                outcome
            }
        };
        match outcome {
            None => Ok(()),
            Some(error) => Err(StoreError::Unavailable(error)),
        }
    }

    fn select_one(&self) -> Result<(), String> {
        let checked = self.db.block(async {
            let query = sqlx::query("SELECT 1").execute(&self.db.pool);
            tokio::time::timeout(REACHABILITY_TIMEOUT, query).await
        });
        match checked {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no answer to SELECT 1 within {} s",
                REACHABILITY_TIMEOUT.as_secs()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::temp_store;
    use super::*;
    use crate::domain::sealed::SecretKey;

    fn record(minutes: i64) -> SessionRecord {
        SessionRecord {
            csrf: "csrf-token".into(),
            expires: Utc::now() + chrono::Duration::minutes(minutes),
        }
    }

    /// A second handle on the same database, as a second node has.
    fn second_node(store: &PgStore) -> PgStore {
        let url = store.db.pool.connect_options();
        let name = url.get_database().expect("database name").to_string();
        let base = std::env::var("INLET_TEST_DATABASE_URL").expect("url");
        let (server, _) = base.rsplit_once('/').expect("database part");
        PgStore::connect(&super::super::PgOptions::new(format!("{server}/{name}")))
            .expect("second node")
    }

    #[test]
    fn a_login_on_one_node_is_live_on_another_and_a_logout_ends_it_on_both() {
        let Some(a) = temp_store() else { return };
        let b = second_node(&a);
        let key = SecretHash::of(b"session-id");
        a.start_session(&key, &record(5)).expect("start");
        let seen = b.live_session(&key, Utc::now()).expect("read");
        assert_eq!(seen.map(|s| s.csrf).as_deref(), Some("csrf-token"));
        b.end_session(&key).expect("end");
        assert_eq!(a.live_session(&key, Utc::now()).expect("read"), None);
    }

    #[test]
    fn an_expired_session_is_not_live_and_is_pruned() {
        let Some(store) = temp_store() else { return };
        let old = SecretHash::of(b"old");
        store.start_session(&old, &record(-1)).expect("start");
        assert_eq!(store.live_session(&old, Utc::now()).expect("read"), None);
        let live = SecretHash::of(b"live");
        store.start_session(&live, &record(5)).expect("start");
        assert_eq!(
            store.prune_sessions(Utc::now()).expect("prune"),
            0,
            "the login pruned it"
        );
        let left: i64 = store
            .db
            .block(async {
                sqlx::query_scalar("SELECT count(*) FROM sessions")
                    .fetch_one(&store.db.pool)
                    .await
            })
            .expect("count");
        assert_eq!(left, 1);
    }

    #[test]
    fn a_flash_is_sealed_in_the_database_and_taken_once_for_its_source() {
        let Some(store) = temp_store() else { return };
        let key = SecretHash::of(b"session-id");
        store.start_session(&key, &record(5)).expect("start");
        let secret_key = SecretKey::generate();
        let (source, other) = (SourceId::new(), SourceId::new());
        let url = "http://inlet.example/hooks/very-secret-token";
        let sealed = secret_key
            .seal(source, url.as_bytes(), Utc::now())
            .expect("seal");
        store
            .set_session_flash(&key, &SessionFlash { source, sealed })
            .expect("set");
        let stored: String = store
            .db
            .block(async {
                sqlx::query_scalar("SELECT flash_sealed::text FROM sessions")
                    .fetch_one(&store.db.pool)
                    .await
            })
            .expect("row");
        assert!(!stored.contains("very-secret-token"), "{stored}");
        assert_eq!(store.take_session_flash(&key, other).expect("take"), None);
        let taken = store
            .take_session_flash(&key, source)
            .expect("take")
            .expect("the flash");
        let opened = secret_key.open(source, &taken).expect("opens");
        assert_eq!(opened.expose(), url.as_bytes());
        assert_eq!(
            store.take_session_flash(&key, source).expect("take"),
            None,
            "once"
        );
    }

    #[test]
    fn the_first_admin_token_wins_and_a_configured_one_replaces_it() {
        let Some(a) = temp_store() else { return };
        let b = second_node(&a);
        let first = SecretHash::of(b"first");
        let won = a.share_admin_token(&first, false).expect("share");
        assert_eq!((won.value.clone(), won.ours), (first.clone(), true));
        let lost = b
            .share_admin_token(&SecretHash::of(b"second"), false)
            .expect("share");
        assert_eq!((lost.value, lost.ours), (first, false), "the stored one");
        let configured = SecretHash::of(b"configured");
        b.share_admin_token(&configured, true).expect("share");
        let later = a
            .share_admin_token(&SecretHash::of(b"third"), false)
            .expect("share");
        assert_eq!(later.value, configured);
    }

    #[test]
    fn the_key_canary_of_the_first_node_is_what_later_nodes_read() {
        let Some(store) = temp_store() else { return };
        let nil = SourceId(uuid::Uuid::nil());
        let (first, second) = (SecretKey::generate(), SecretKey::generate());
        let sealed = first.seal(nil, b"canary", Utc::now()).expect("seal");
        assert!(store.share_key_canary(&sealed).expect("share").ours);
        let other = second.seal(nil, b"canary", Utc::now()).expect("seal");
        let shared = store.share_key_canary(&other).expect("share");
        assert!(!shared.ours);
        assert!(first.open(nil, &shared.value).is_ok());
        assert!(
            second.open(nil, &shared.value).is_err(),
            "another key does not open it"
        );
    }

    #[test]
    fn a_reachable_database_passes_the_check_and_an_unreachable_one_is_unavailable() {
        let Some(store) = temp_store() else { return };
        store.check_reachable().expect("reachable");
        let nowhere = PgStore {
            db: super::super::db::Db::open("postgres://postgres@127.0.0.1:1/none", 1)
                .expect("pool"),
            reachability: Default::default(),
            ..store.clone()
        };
        let error = nowhere.check_reachable().expect_err("unreachable");
        assert!(error.is_unavailable(), "{error}");
    }
}
