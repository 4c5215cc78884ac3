//! Accepting a hook request: steps 1–7 of the data-flow line.
//!
//! find the source by token → authenticate → (the body, read by HTTP under
//! its limit and deadline) → signature (over the raw bytes) → redelivery
//! (a delivery id already accepted is answered with its first ids) → decode → explode records → durable log →
//! group flush → [`Accepted`]. Every refusal at a known source is written to
//! the error log with its stage and code; nothing here maps or resolves.
//!
//! This runs on every hook request, so it copies nothing it can borrow: the
//! request's parts are borrowed from HTTP ([`HookRequest`], [`Headers`]),
//! the body is one `Bytes`, and only a body large enough to go to the
//! blocking pool has its few borrowed strings copied.

use crate::domain::decode::{self, Body, Refusal, RefusalKind};
use crate::domain::delivery::Claim;
use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::{ErrorEntry, RawEvent, Stage};
use crate::domain::records::{self, Exploded, Limits};
use crate::domain::signature;
use crate::domain::source::{SecretHash, Source};
use crate::service::{ServiceError, ServiceResult, Services};
use crate::store::{EventLog, StateStore};
use bytes::Bytes;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;

/// The 202 body: how many records were stored, and their event ids in
/// record order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accepted {
    pub accepted: usize,
    pub ids: Vec<EventId>,
    /// The request repeated a delivery already accepted: `ids` are the
    /// first delivery's, and nothing new was stored.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub redelivery: bool,
}

impl Accepted {
    fn redelivery(ids: Vec<EventId>) -> Self {
        Self {
            accepted: ids.len(),
            ids,
            redelivery: true,
        }
    }
}

/// How long a request waits for another with the same delivery id, and
/// how often it looks.
const IN_FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const IN_FLIGHT_POLL: std::time::Duration = std::time::Duration::from_millis(25);

enum Claimed<'a> {
    New(DeliveryClaim<'a>),
    Redelivery(Vec<EventId>),
}

/// A claimed delivery id: settled as accepted with its ids, or released
/// when the request is refused, fails or is cancelled (its sender hung
/// up), so the sender's retry is accepted as new.
struct DeliveryClaim<'a> {
    services: &'a Services,
    source: SourceId,
    id: String,
    window_s: u64,
    settled: bool,
}

impl DeliveryClaim<'_> {
    fn accepted(mut self, ids: &[EventId]) {
        self.settled = true;
        self.settle(Some(ids));
    }

    fn settle(&self, ids: Option<&[EventId]>) {
        let now = chrono::Utc::now();
        let store = &self.services.store;
        if let Err(e) = store.settle_delivery(self.source, &self.id, ids, now, self.window_s) {
            // The events are stored; only a redelivery would store again.
            tracing::error!(source = %self.source, error = %e, "could not record the delivery id");
        }
    }
}

impl Drop for DeliveryClaim<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.settle(None);
        }
    }
}

/// What the use case reads of a request's headers. HTTP implements it for
/// its header map, so this layer knows no HTTP types and nothing is copied.
pub trait Headers {
    /// The raw value of the header `name` (lowercase), if present.
    fn get(&self, name: &str) -> Option<&[u8]>;
    /// Every header as (lowercase name, raw value), in arrival order.
    fn each(&self) -> impl Iterator<Item = (&str, &[u8])>;
}

/// A hook request as HTTP received it, borrowed from the request.
pub struct HookRequest<'a, H> {
    /// A GET: when its body is empty, the query string is the record.
    pub is_get: bool,
    /// The `Content-Type` value, when it is visible ASCII.
    pub content_type: Option<&'a str>,
    pub query: Option<&'a str>,
    pub headers: &'a H,
}

impl Services {
    /// The source behind a hook URL's token. Not found is not logged: there
    /// is no source to log it under, and anyone can probe URLs. A rotated-out
    /// token opens its source during its grace only (counted apart), and a
    /// source over its rate limit answers `RateLimited` (see `sources`).
    pub async fn hook_source(&self, token: &str) -> ServiceResult<Arc<Source>> {
        let unknown = || {
            ServiceError::NotFound(
                "unknown webhook URL: no source has this token (it may have been rotated or deleted)"
                    .into(),
            )
        };
        // Real tokens are far shorter: hashing a long one is wasted work.
        if token.len() > 128 {
            return Err(unknown());
        }
        let hash = SecretHash::of(token.as_bytes());
        let source = self
            .store
            .cached_source_by_token(&hash)?
            // An old token past its grace: as unknown as any other.
            .filter(|source| self.admit_token(source, &hash))
            .ok_or_else(unknown)?;
        self.admit_rate(&source)?;
        Ok(source)
    }

    /// Accepts one request at `source`: authenticates it, then awaits
    /// `body` (HTTP reads it under the size limit and the body deadline;
    /// awaited only once the sender is authenticated, so an unauthenticated
    /// body is never read), decodes and explodes it, appends the records to
    /// the log and waits until they are durable.
    ///
    /// A refusal is written to the error log before it is returned.
    pub async fn accept_hook<H: Headers>(
        &self,
        source: &Source,
        request: HookRequest<'_, H>,
        body: impl Future<Output = Result<Bytes, Refusal>>,
    ) -> Result<Accepted, Refusal> {
        let accepted = self.accept(source, request, body).await;
        if let Err(refusal) = &accepted {
            self.log_refusal(source.id, refusal);
        }
        accepted
    }

    async fn accept<H: Headers>(
        &self,
        source: &Source,
        request: HookRequest<'_, H>,
        body: impl Future<Output = Result<Bytes, Refusal>>,
    ) -> Result<Accepted, Refusal> {
        authenticate(source, request.headers)?;
        let bytes = body.await?;
        let delivery = self.check_signature(source, request.headers, &bytes)?;
        let claim = match delivery {
            Some((id, window_s)) => match self.claim_delivery(source.id, id, window_s).await? {
                Claimed::New(claim) => Some(claim),
                Claimed::Redelivery(ids) => return Ok(Accepted::redelivery(ids)),
            },
            None => None,
        };
        let received = Received {
            from_query: request.is_get && bytes.is_empty(),
            content_type: request.content_type,
            query: request.query,
            bytes,
            records_path: source.records_path.as_deref(),
        };
        let limits = Limits {
            max_records: self.config.max_records,
            max_record_bytes: self
                .config
                .max_stored_factor
                .saturating_mul(received.size()),
        };
        let exploded = decode_and_explode(received, limits).await?;
        // The signature is not a secret, but kept beside its body it would
        // let a reader of the events try guesses of a weak signing secret.
        let signature_header = source.verify.as_ref().map(|v| v.scheme.signature_header());
        let safe_headers = decode::safe_headers(
            request
                .headers
                .each()
                .filter(|(name, _)| Some(*name) != signature_header),
            source.api_key.as_ref().map(|k| k.header.as_str()),
        );
        let events = records::raw_events(source.id, exploded, safe_headers);
        let ids = self.store_durably(source.id, events).await?;
        if let Some(claim) = claim {
            claim.accepted(&ids);
        }
        Ok(Accepted {
            accepted: ids.len(),
            ids,
            redelivery: false,
        })
    }

    /// Checks the request's signature over the raw bytes, when the source
    /// verifies. Passes with the delivery id and redelivery window when
    /// the scheme carries one.
    fn check_signature<'r, H: Headers>(
        &self,
        source: &Source,
        headers: &'r H,
        bytes: &'r [u8],
    ) -> Result<Option<(String, u64)>, Refusal> {
        let Some(setting) = &source.verify else {
            return Ok(None);
        };
        let secrets = setting
            .secrets
            .iter()
            .map(|sealed| self.secret_key.open(source.id, sealed))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                tracing::error!(source = %source.id, error = %e, "signing secret unreadable");
                Refusal::new(
                    RefusalKind::Internal,
                    Stage::Auth,
                    "signing_secret_unreadable",
                    e.to_string(),
                )
            })?;
        let header = |name: &str| headers.get(name);
        let now = chrono::Utc::now().timestamp();
        signature::verify(setting, &secrets, header, bytes, now).map_err(|refusal| {
            Refusal::new(
                RefusalKind::Unauthenticated,
                Stage::Auth,
                refusal.code(),
                refusal.message(setting.tolerance_s),
            )
        })?;
        Ok(signature::delivery_id(&setting.scheme, header, bytes)
            .map(|id| (id, setting.redelivery_window_s)))
    }

    /// Claims a delivery id for this request; a request with the same id
    /// still in flight is waited for (its answer is this one's), up to
    /// [`IN_FLIGHT_WAIT`].
    async fn claim_delivery(
        &self,
        source: SourceId,
        id: String,
        window_s: u64,
    ) -> Result<Claimed<'_>, Refusal> {
        let failed = |e: crate::store::StoreError| {
            tracing::error!(error = %e, "delivery claim failed");
            store_refusal(&e)
        };
        let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
        loop {
            let now = chrono::Utc::now();
            match self
                .store
                .claim_delivery(source, &id, now, window_s)
                .map_err(failed)?
            {
                Claim::Claimed => {
                    return Ok(Claimed::New(DeliveryClaim {
                        services: self,
                        source,
                        id,
                        window_s,
                        settled: false,
                    }))
                }
                Claim::Redelivery(ids) => {
                    tracing::info!(source = %source, "redelivery answered from the first delivery");
                    return Ok(Claimed::Redelivery(ids));
                }
                Claim::InFlight if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(IN_FLIGHT_POLL).await;
                }
                Claim::InFlight => {
                    return Err(Refusal::new(
                        RefusalKind::InProgress,
                        Stage::Auth,
                        "delivery_in_progress",
                        "a request with the same delivery id is still being accepted; retry in a few seconds".into(),
                    ))
                }
            }
        }
    }

    /// Appends the records and waits for the group flush that covers them;
    /// returns their event ids.
    ///
    /// The append itself runs inline: it is a memcpy into the log buffer,
    /// cheaper than a hop to the blocking pool. Only the flush waits, and
    /// it waits asynchronously.
    async fn store_durably(
        &self,
        source_id: SourceId,
        events: Vec<RawEvent>,
    ) -> Result<Vec<EventId>, Refusal> {
        let appended = self.store.append_events(events).map_err(|e| {
            tracing::error!(error = %e, "append failed");
            store_refusal(&e)
        })?;
        let ids: Vec<EventId> = appended.events.iter().map(|e| e.id).collect();
        // Counted as soon as they are in the log, before the await: the
        // processor sees them from now on, and a sender that hangs up during
        // the flush cancels this future, which must not leave them uncounted.
        self.counters.add_received(source_id, ids.len() as u64);
        // A commit that failed stored nothing we may acknowledge: 503, so
        // the sender retries (a 500 would say the request is at fault).
        self.commit.durable(appended.receipt).await.map_err(|e| {
            tracing::error!(error = %e, "group commit failed");
            Refusal::new(
                RefusalKind::Unavailable,
                Stage::Store,
                STORE_UNAVAILABLE,
                "the records could not be committed; retry shortly".into(),
            )
        })?;
        // The processor takes durable events only: wake it now that these are.
        self.new_events.notify_one();
        Ok(ids)
    }

    fn log_refusal(&self, source: SourceId, refusal: &Refusal) {
        tracing::info!(
            stage = refusal.stage.as_str(),
            code = refusal.code,
            "refused"
        );
        if let Err(e) = self.store.log_error(&ErrorEntry::refused(source, refusal)) {
            tracing::error!(error = %e, "could not write the error log");
        }
    }
}

/// The code of a hook refused because the store cannot take it now (the
/// same as every other answer of an unreachable store).
pub const STORE_UNAVAILABLE: &str = "store_unavailable";

/// A store failure on the hook path: 503 `store_unavailable` when the
/// database cannot be reached (retry), else an internal failure (500).
fn store_refusal(e: &crate::store::StoreError) -> Refusal {
    if e.is_unavailable() {
        return Refusal::new(
            RefusalKind::Unavailable,
            Stage::Store,
            STORE_UNAVAILABLE,
            "the database is unavailable; retry shortly".into(),
        );
    }
    Refusal::new(
        RefusalKind::Internal,
        Stage::Store,
        "store_failed",
        e.to_string(),
    )
}

fn authenticate(source: &Source, headers: &impl Headers) -> Result<(), Refusal> {
    let Some(key) = &source.api_key else {
        return Ok(());
    };
    let presented = headers.get(key.header.as_str());
    if source.accepts_key(presented) {
        return Ok(());
    }
    let (code, message) = match presented {
        None => (
            "missing_api_key",
            format!("this source requires the `{}` header", key.header),
        ),
        Some(_) => (
            "bad_api_key",
            format!(
                "the `{}` header does not hold this source's api key",
                key.header
            ),
        ),
    };
    Err(Refusal::new(
        RefusalKind::Unauthenticated,
        Stage::Auth,
        code,
        message,
    ))
}

/// What decoding and explosion need of a request. Borrowed: nearly every
/// request is decoded in place, and only a large one is copied to move to
/// the blocking pool (`decode_and_explode`).
struct Received<'a> {
    /// A GET with no body: the query string is the record.
    from_query: bool,
    content_type: Option<&'a str>,
    query: Option<&'a str>,
    bytes: Bytes,
    records_path: Option<&'a str>,
}

impl Received<'_> {
    /// Bytes received: the body, or the query string it was decoded from.
    fn size(&self) -> usize {
        if self.from_query {
            self.query.map_or(0, str::len)
        } else {
            self.bytes.len()
        }
    }
}

/// Requests at most this large are decoded and exploded on the request's
/// own thread: nearly every hook request, for which a hop to the blocking
/// pool would cost more than the work. Larger ones (up to
/// `max_body_bytes`, a few ms of parsing and explosion) run on the blocking
/// pool, so they cannot stall the async workers and every other sender.
const INLINE_BYTES: usize = 64 << 10;

async fn decode_and_explode(request: Received<'_>, limits: Limits) -> Result<Exploded, Refusal> {
    if request.size() <= INLINE_BYTES {
        return decode_and_explode_now(&request, limits);
    }
    let owned = |s: Option<&str>| s.map(str::to_owned);
    let (content_type, query, records_path) = (
        owned(request.content_type),
        owned(request.query),
        owned(request.records_path),
    );
    let (from_query, bytes) = (request.from_query, request.bytes);
    tokio::task::spawn_blocking(move || {
        let request = Received {
            from_query,
            content_type: content_type.as_deref(),
            query: query.as_deref(),
            bytes,
            records_path: records_path.as_deref(),
        };
        decode_and_explode_now(&request, limits)
    })
    .await
    .map_err(|e| {
        Refusal::new(
            RefusalKind::Internal,
            Stage::Decode,
            "decode_failed",
            format!("decoding the body failed: {e}"),
        )
    })?
}

fn decode_and_explode_now(request: &Received, limits: Limits) -> Result<Exploded, Refusal> {
    let body = decode(request)?;
    records::explode_body(body, request.records_path, limits).map_err(|e| e.refusal(&request.bytes))
}

fn decode<'a>(request: &'a Received) -> Result<Body<'a>, Refusal> {
    let result = if request.from_query {
        decode::decode_query(request.query.unwrap_or("")).map(Body::Value)
    } else {
        decode::body_format(request.content_type)
            .and_then(|format| decode::decode_body(format, &request.bytes))
    };
    result.map_err(|e| e.refusal(&request.bytes))
}
