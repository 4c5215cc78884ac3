//! Sources: create (optionally from a preset), list, read, update, rotate
//! the token, delete, and set or clear the api key. The JSON API and the
//! dashboard both create through [`Services::create_source`], so a preset's
//! name and records path and the blocked values apply to both alike.

use super::ingest::{Headers, HookRequest};
use super::mappings::{unknown_preset, SavedMapping};
use super::{ServiceError, ServiceResult, Services};
use crate::domain::decode::{Refusal, RefusalKind};
use crate::domain::events::EventFilter;
use crate::domain::ids::{EventId, SourceId};
use crate::domain::mapping::presets;
use crate::domain::model::{ErrorEntry, Level, Stage};
use crate::domain::replay::ReplayJob;
use crate::domain::signature::{self, SchemeName, SignatureSettingError, Verify, VerifyInput};
use crate::domain::source::{ApiKeyInput, Grace, RateLimit, Source, SourceError};
use crate::domain::source::{SecretHash, TokenUse};
use crate::domain::source_view::{SourceView, WithToken};
use crate::store::StateStore;
use bytes::Bytes;
use dashmap::DashMap;
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use serde_json::{json, Value};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// What creating a source takes; absent fields take the preset's value
/// (name, records path), then the default.
#[derive(Clone, Debug, Default)]
pub struct NewSource {
    /// Falls back to the preset's name; empty is refused.
    pub name: Option<String>,
    /// Start from a preset: its records path and mapping (version 1).
    pub preset: Option<String>,
    pub api_key: Option<ApiKeyInput>,
    /// Falls back to the preset's records path.
    pub records_path: Option<String>,
    pub blocked_values: Option<Vec<String>>,
    /// Signature verification: absent takes the preset's scheme (waiting
    /// for its secret), `Some(None)` verifies nothing, `Some(Some(_))`
    /// sets it (the scheme may come from the preset).
    pub verify: Option<Option<VerifyInput>>,
    /// Off when absent.
    pub rate_limit: Option<RateLimit>,
}

/// A change to a source: `None` leaves a field as it is; for `api_key` and
/// `records_path`, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct SourceUpdate {
    pub name: Option<String>,
    pub api_key: Option<Option<ApiKeyInput>>,
    pub records_path: Option<Option<String>>,
    pub blocked_values: Option<Vec<String>>,
    /// `Some(None)` stops verifying; `Some(Some(_))` changes the setting
    /// (see `domain::signature::apply`).
    pub verify: Option<Option<VerifyInput>>,
    /// `Some(None)` removes the limit.
    pub rate_limit: Option<Option<RateLimit>>,
}

/// A created source: its view with the one-time token, and the mapping
/// saved from the preset, if one was named (`mapping_version` is then that
/// mapping's version).
#[derive(Clone, Debug, Serialize)]
pub struct CreatedSource {
    #[serde(flatten)]
    pub source: WithToken,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping: Option<SavedMapping>,
}

/// One source with its replay job (the last one, finished or not).
#[derive(Clone, Debug, Serialize)]
pub struct SourceDetail {
    #[serde(flatten)]
    pub source: SourceView,
    pub replay: Option<ReplayJob>,
}

/// `{"sources": [...]}`, in store order.
#[derive(Clone, Debug, Serialize)]
pub struct SourceList {
    pub sources: Vec<SourceView>,
}

/// A source id as typed in a URL: one that does not parse names no source.
pub fn parse_source_id(id: &str) -> ServiceResult<SourceId> {
    id.parse().map_err(|_| no_source(id))
}

pub(crate) fn no_source(id: impl std::fmt::Display) -> ServiceError {
    ServiceError::NotFound(format!("no source `{id}`"))
}

/// A refused setting: the message says what to fix.
fn refused(e: SourceError) -> ServiceError {
    ServiceError::BadRequest(e.to_string())
}

impl Services {
    /// Creates a source; with a preset, also saves its mapping as version 1.
    pub async fn create_source(&self, input: NewSource) -> ServiceResult<CreatedSource> {
        let preset = input
            .preset
            .as_deref()
            .map(|name| presets::preset(name).ok_or_else(|| unknown_preset(name)))
            .transpose()?;
        if let Some(preset) = preset {
            // Before the source exists: a kind that cannot be defined
            // leaves no half-made source behind.
            self.define_preset_kinds(&preset.kinds)?;
        }
        // No name and no preset: the empty name is refused by `Source::create`.
        let name = input
            .name
            .or_else(|| preset.map(|p| p.name.clone()))
            .unwrap_or_default();
        let records_path = input
            .records_path
            .or_else(|| preset.and_then(|p| p.records_path.clone()));
        let (mut source, token) =
            Source::create(&name, input.api_key, records_path).map_err(refused)?;
        source.set_blocked_values(input.blocked_values.unwrap_or_default());
        source.set_rate_limit(input.rate_limit).map_err(refused)?;
        let preset_verify = preset
            .and_then(|p| p.verify)
            .and_then(|name| named_scheme(name).map(signature::awaiting_secret));
        source.verify = match input.verify {
            None => preset_verify,
            Some(None) => None,
            Some(Some(change)) => {
                Some(self.apply_verify(&source, preset_verify.as_ref(), change)?)
            }
        };
        self.store.put_source(&source)?;
        tracing::info!(source = %source.id, "source created");
        let mut view = self.source_view(&source)?;
        let mapping = match preset {
            // A preset's mapping is small and known to compile: saved here,
            // not on the blocking pool.
            Some(preset) => {
                let saved = self.save_mapping_now(
                    &source,
                    preset.mapping.clone(),
                    Some(preset.name.clone()),
                )?;
                view.mapping_version = Some(saved.saved.version);
                Some(saved)
            }
            None => None,
        };
        Ok(CreatedSource {
            source: WithToken::new(view, token),
            mapping,
        })
    }

    /// Every source.
    pub async fn list_sources(&self) -> ServiceResult<SourceList> {
        let sources = self
            .store
            .sources()?
            .iter()
            .map(|s| self.source_view(s))
            .collect::<ServiceResult<_>>()?;
        Ok(SourceList { sources })
    }

    /// One source.
    pub async fn source(&self, id: SourceId) -> ServiceResult<SourceView> {
        self.source_view(&self.load_source(id)?)
    }

    /// One source with its replay job.
    pub async fn source_detail(&self, id: SourceId) -> ServiceResult<SourceDetail> {
        let source = self.load_source(id)?;
        Ok(SourceDetail {
            replay: self.store.replay(source.id)?,
            source: self.source_view(&source)?,
        })
    }

    /// Applies `update` (all of it or, when a field is refused, none).
    pub async fn update_source(
        &self,
        id: SourceId,
        update: SourceUpdate,
    ) -> ServiceResult<SourceView> {
        let mut source = self.load_source(id)?;
        if let Some(name) = update.name {
            source.set_name(&name).map_err(refused)?;
        }
        if let Some(key) = update.api_key {
            source.set_api_key(key).map_err(refused)?;
        }
        if let Some(path) = update.records_path {
            source.set_records_path(path).map_err(refused)?;
        }
        if let Some(values) = update.blocked_values {
            source.set_blocked_values(values);
        }
        if let Some(limit) = update.rate_limit {
            source.set_rate_limit(limit).map_err(refused)?;
        }
        if let Some(change) = update.verify {
            source.verify = match change {
                None => None,
                Some(change) => Some(self.apply_verify(&source, source.verify.as_ref(), change)?),
            };
        }
        source.updated_at = chrono::Utc::now();
        self.store.put_source(&source)?;
        if let Some(verify) = &source.verify {
            tracing::info!(source = %source.id, scheme = ?verify.scheme.name(), secrets = verify.secrets.len(), "signature verification set");
        }
        self.source_view(&source)
    }

    /// Sets (`Some`) or removes (`None`) the api key senders must present.
    pub async fn set_source_api_key(
        &self,
        id: SourceId,
        key: Option<ApiKeyInput>,
    ) -> ServiceResult<SourceView> {
        let update = SourceUpdate {
            api_key: Some(key),
            ..SourceUpdate::default()
        };
        self.update_source(id, update).await
    }

    /// A new token; the old one keeps working for `grace_s` seconds (0:
    /// it stops at once). A token still in an earlier grace stops now
    /// (see `Source::rotate_with_grace`), and the old-token counts start
    /// again from nothing.
    pub async fn rotate_source(&self, id: SourceId, grace_s: u64) -> ServiceResult<WithToken> {
        let grace = Grace::seconds(grace_s).map_err(refused)?;
        let mut source = self.load_source(id)?;
        let token = source.rotate_with_grace(grace);
        self.store.put_source(&source)?;
        self.counters.reset_old_token(id);
        self.store.clear_old_token_use(id)?;
        tracing::info!(source = %source.id, grace_s, "source token rotated");
        Ok(WithToken::new(self.source_view(&source)?, token))
    }

    /// Deletes a source: its URL stops working; stored events stay until
    /// retention removes them.
    pub async fn delete_source(&self, id: SourceId) -> ServiceResult<()> {
        match self.store.delete_source(id)? {
            Some(_) => {
                tracing::info!(source = %id, "source deleted");
                Ok(())
            }
            None => Err(no_source(id)),
        }
    }

    /// Sends one test event to a source through the hook path (decode,
    /// explode, durable log, processor), as a sender would: the last
    /// record the source received, or a small default when it has none.
    /// The event carries the [`TEST_EVENT_HEADER`] header, which its page
    /// shows with the other headers.
    ///
    /// The caller is the admin, so the source's api key is not asked for;
    /// and the record is sent as the whole body (no records path), because
    /// it is already one record, not a body to explode.
    pub async fn send_test_event(&self, id: SourceId) -> ServiceResult<TestEvent> {
        let source = self.load_source(id)?;
        let (payload, sent) = match self.last_payload(id)? {
            Some(payload) => (payload, TestPayload::LastReceived),
            None => (default_test_payload(), TestPayload::Default),
        };
        let body = serde_json::to_vec(&payload)
            .map_err(|e| ServiceError::Internal(format!("encoding a test event: {e}")))?;
        // Nor is a signature: the admin is no forged sender.
        let as_sent = Source {
            api_key: None,
            records_path: None,
            verify: None,
            ..source
        };
        let request = HookRequest {
            is_get: false,
            content_type: Some("application/json"),
            query: None,
            headers: &TestHeaders,
        };
        let accepted = self
            .accept_hook(&as_sent, request, async { Ok(Bytes::from(body)) })
            .await
            .map_err(test_refused)?;
        let event_id = accepted.ids.first().copied().ok_or_else(|| {
            ServiceError::Internal("a test event was accepted as no record".into())
        })?;
        tracing::info!(source = %id, event = %event_id, "test event sent");
        Ok(TestEvent {
            id: event_id,
            source_id: id,
            sent,
            payload,
        })
    }

    /// The newest record this source received, if any.
    fn last_payload(&self, id: SourceId) -> ServiceResult<Option<Value>> {
        let (events, _) = self.store.events_page(&EventFilter {
            source_id: Some(id),
            limit: 1,
            ..EventFilter::default()
        })?;
        Ok(events.into_iter().next().map(|e| e.raw.payload.clone()))
    }

    pub(crate) fn load_source(&self, id: SourceId) -> ServiceResult<Source> {
        self.store.source(id)?.ok_or_else(|| no_source(id))
    }

    fn source_view(&self, source: &Source) -> ServiceResult<SourceView> {
        let mut counts = self.counters.view(source.id);
        counts.redelivered = self.store.redelivered(source.id)?;
        Ok(SourceView::of(source, counts).with_old_token(self.counters.old_token(source.id)))
    }

    /// `change` applied to `current`, new secrets sealed for this source.
    fn apply_verify(
        &self,
        source: &Source,
        current: Option<&Verify>,
        change: VerifyInput,
    ) -> ServiceResult<Verify> {
        let now = chrono::Utc::now();
        let seal = |secret: &str| {
            self.secret_key
                .seal(source.id, secret.as_bytes(), now)
                .map_err(|_| SignatureSettingError::Seal)
        };
        signature::apply(current, change, seal).map_err(|e| ServiceError::BadRequest(e.to_string()))
    }
}

/// The header that marks an event as sent by "Send a test event".
pub const TEST_EVENT_HEADER: &str = "x-inlet-test-event";

/// What `send_test_event` made: the event's id and what it carried.
#[derive(Clone, Debug, Serialize)]
pub struct TestEvent {
    pub id: EventId,
    pub source_id: SourceId,
    /// Where the payload came from.
    pub sent: TestPayload,
    pub payload: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestPayload {
    /// The last record the source received.
    LastReceived,
    /// Nothing was received yet: a small sample with an email and an event.
    Default,
}

/// A record a new source's mapping can be tried with: an identifier, an
/// event name, a time and a property.
fn default_test_payload() -> Value {
    json!({
        "event": "inlet_test",
        "email": "test@example.com",
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "properties": {"test": true}
    })
}

/// The headers of a test event's request: its marker and content type.
struct TestHeaders;

impl Headers for TestHeaders {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.each().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    fn each(&self) -> impl Iterator<Item = (&str, &[u8])> {
        [
            ("content-type", b"application/json".as_slice()),
            (TEST_EVENT_HEADER, b"true".as_slice()),
        ]
        .into_iter()
    }
}

/// A refused test event in the use case's words (it is in the error log
/// too, as any refusal at a known source).
fn test_refused(refusal: Refusal) -> ServiceError {
    match refusal.kind {
        RefusalKind::Internal => ServiceError::Internal(refusal.message),
        RefusalKind::Unavailable => ServiceError::Unavailable {
            code: refusal.code,
            message: refusal.message,
        },
        RefusalKind::TooLarge => ServiceError::TooLarge {
            code: refusal.code,
            message: format!("the test event was refused: {}", refusal.message),
        },
        _ => ServiceError::Invalid {
            message: format!("the test event was refused: {}", refusal.message),
            fields: Default::default(),
            code: Some(refusal.code),
        },
    }
}

/// A named scheme without settings of its own (what a preset names).
fn named_scheme(name: SchemeName) -> Option<signature::Scheme> {
    VerifyInput {
        scheme: Some(name),
        ..VerifyInput::default()
    }
    .scheme()
    .ok()
    .flatten()
}

// --- the hook path's admission: which token, and the rate limit (issue 18) ---

impl Services {
    /// Does the token whose hash is `hash` (the one `source` was found by)
    /// still open `source`? The current one does; a rotated-out one does
    /// until its grace ends, and each such request is counted apart and
    /// persisted, so the source's page shows when the last sender moved.
    pub(crate) fn admit_token(&self, source: &Source, hash: &SecretHash) -> bool {
        // The hot path: the current token, no clock read.
        if source.token_hash == *hash {
            return true;
        }
        let now = chrono::Utc::now();
        match source.token_use(hash, now) {
            Some(TokenUse::Previous) => {
                self.count_old_token_use(source.id, now);
                true
            }
            Some(TokenUse::Current) => true,
            None => false,
        }
    }

    fn count_old_token_use(&self, id: SourceId, now: chrono::DateTime<chrono::Utc>) {
        let used = self.counters.old_token_used(id, now);
        // A lost write costs a count after a restart, not the request.
        if let Err(e) = self.store.put_old_token_use(id, &used) {
            tracing::warn!(source = %id, error = %e, "could not persist the old-token count");
        }
    }

    /// The source's rate limit, if it has one: `RateLimited` (429) when its
    /// bucket is empty. Refusals go to the error log at most once per source
    /// per second, each entry saying how many were refused since the last
    /// one, so a flood costs no more than one log write a second.
    pub(crate) fn admit_rate(&self, source: &Source) -> ServiceResult<()> {
        let Some(limit) = source.rate_limit else {
            return Ok(());
        };
        let Err(wait) = self.rate_limits.check(source.id, limit) else {
            return Ok(());
        };
        if let Some(refused) = self.rate_limits.refused_to_log(source.id) {
            self.log_rate_limited(source.id, limit, refused);
        }
        // Whole seconds, at least one: what Retry-After can say.
        let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Err(ServiceError::RateLimited {
            retry_after_secs: retry_after_secs.max(1),
            message: format!(
                "this source accepts at most {} requests a second (bursts of {}); retry in {} s",
                limit.per_s,
                limit.burst,
                retry_after_secs.max(1)
            ),
        })
    }

    fn log_rate_limited(&self, id: SourceId, limit: RateLimit, refused: u64) {
        let entry = ErrorEntry::new(
            Some(id),
            Stage::Limit,
            Level::Warning,
            RATE_LIMITED,
            format!(
                "rate limit of {} requests a second (bursts of {}) reached: {refused} request(s) refused since the last entry",
                limit.per_s, limit.burst
            ),
        );
        if let Err(e) = self.store.log_error(&entry) {
            tracing::error!(error = %e, "could not write the error log");
        }
    }
}

/// The code of a 429 from a source's rate limit.
pub const RATE_LIMITED: &str = "rate_limited";

/// One token bucket per source with a rate limit.
///
/// governor's keyed limiter shares one quota among all keys; each source
/// has its own, so this keeps one direct limiter per source, replaced when
/// the source's setting changes. Each check is one map read and one
/// atomic compare-and-swap (GCRA keeps a bucket in a single `u64`).
#[derive(Default)]
pub struct RateLimiters {
    buckets: DashMap<SourceId, Arc<Bucket>>,
}

struct Bucket {
    limit: RateLimit,
    limiter: DefaultDirectRateLimiter,
    /// Refusals not yet in the error log.
    unlogged: AtomicU64,
    /// The second (unix time) of the last error-log entry.
    logged_at_s: AtomicI64,
}

impl Bucket {
    fn new(limit: RateLimit) -> Self {
        // `RateLimit` is validated to be at least 1 in both fields.
        let per_s = NonZeroU32::new(limit.per_s).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limit,
            limiter: RateLimiter::direct(Quota::per_second(per_s).allow_burst(burst)),
            unlogged: AtomicU64::new(0),
            logged_at_s: AtomicI64::new(0),
        }
    }
}

impl RateLimiters {
    fn bucket(&self, id: SourceId, limit: RateLimit) -> Arc<Bucket> {
        if let Some(bucket) = self.buckets.get(&id).filter(|b| b.limit == limit) {
            return bucket.clone();
        }
        // New, or the setting changed: a fresh, full bucket.
        let bucket = Arc::new(Bucket::new(limit));
        self.buckets.insert(id, bucket.clone());
        bucket
    }

    /// Takes one request from the bucket, or says how long until one fits.
    fn check(&self, id: SourceId, limit: RateLimit) -> Result<(), std::time::Duration> {
        let bucket = self.bucket(id, limit);
        bucket.limiter.check().map_err(|not_until| {
            bucket.unlogged.fetch_add(1, Ordering::Relaxed);
            not_until.wait_time_from(bucket.limiter.clock().now())
        })
    }

    /// The refusals to log now, if the source's last entry is from an
    /// earlier second (only one caller a second wins the swap).
    fn refused_to_log(&self, id: SourceId) -> Option<u64> {
        let bucket = self.buckets.get(&id)?.clone();
        let now = chrono::Utc::now().timestamp();
        let last = bucket.logged_at_s.load(Ordering::Relaxed);
        if now <= last {
            return None;
        }
        bucket
            .logged_at_s
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(bucket.unlogged.swap(0, Ordering::Relaxed))
    }
}
