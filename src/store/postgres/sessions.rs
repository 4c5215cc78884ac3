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
