//! Events on PostgreSQL: states (`event_states`), pages and bounded views.
//!
//! An event exists while it is in `pending` (not processed yet) or has a
//! row in `event_states` (processed); a row in `events` with neither is
//! not shown (as the embedded backend: the queue first, then the state).
//!
//! Pages read newest first in windows of ids: what a filter can say in SQL
//! (source, before/to, from, status) narrows a window, and a window holds
//! a bounded number of candidates, so a rare filter costs bounded work and
//! the page says where it stopped. `EventFilter::check`/`matches` decide
//! the rest (name, search), as in the embedded backend.

use super::PgStore;
use crate::domain::events::{EventFilter, StoredEvent, Verdict};
use crate::domain::excerpt;
use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::{EventState, EventStatus, RawEvent};
use crate::domain::summary::Shown;
use crate::store::embedded::summary::{
    whole_or_excerpt, MapShown, RawView, RecordHead, HEAD_ROOM, PAYLOAD_KEY, SEARCH_PAYLOAD_MAX,
};
use crate::store::StoreError;
use crate::store::{Bounds, EventSummary, Location, ScanBudget, StoreResult, SummaryPage};
use serde_json::Map;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// How many candidates a full page (`events_page`) looks at at most, as
/// the embedded backend's scan cap.
const SCAN_CAP: usize = 20_000;
/// The largest window of candidates one query reads.
const WINDOW_MAX: usize = 1_000;

/// Writes (inserts or replaces) events' states inside a transaction: one
/// statement for the whole batch. A nil source (a replayed event without
/// identity work, see identity.rs `state_source`) keeps the row's source.
pub(super) async fn write_states(
    conn: &mut sqlx::PgConnection,
    states: &[(EventId, SourceId, &EventState)],
) -> StoreResult<()> {
    if states.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(states.len());
    let mut sources = Vec::with_capacity(states.len());
    let mut statuses = Vec::with_capacity(states.len());
    let mut docs = Vec::with_capacity(states.len());
    for (id, source, state) in states {
        ids.push(id.0);
        sources.push(source.0);
        statuses.push(status_of(state).as_str());
        docs.push(serde_json::to_string(state).map_err(encode_error)?);
    }
    sqlx::query(
        "INSERT INTO event_states (event_id, source_id, status, state)
         SELECT i, s, st, d::jsonb
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS t(i, s, st, d)
         ON CONFLICT (event_id) DO UPDATE
         SET source_id = CASE WHEN EXCLUDED.source_id = '00000000-0000-0000-0000-000000000000'::uuid
                              THEN event_states.source_id ELSE EXCLUDED.source_id END,
             status = EXCLUDED.status, state = EXCLUDED.state",
    )
    .bind(&ids)
    .bind(&sources)
    .bind(&statuses)
    .bind(&docs)
    .execute(conn)
    .await?;
    Ok(())
}

fn status_of(state: &EventState) -> EventStatus {
    state.status.unwrap_or(EventStatus::Pending)
}

fn encode_error(source: serde_json::Error) -> StoreError {
    StoreError::Encode {
        what: "an event state",
        source,
    }
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { tree: what, source })
}

/// The SQL side of a filter: an id range, a source, a status.
#[derive(Clone, Copy)]
struct Window {
    source: Option<Uuid>,
    /// Exclusive upper end.
    before: Option<Uuid>,
    /// Inclusive lower end (`from`).
    from: Option<Uuid>,
    status: Option<&'static str>,
}

impl Window {
    fn of(filter: &EventFilter) -> Self {
        Self {
            source: filter.source_id.map(|s| s.0),
            before: filter.upper_bound().map(|b| b.0),
            from: filter
                .from
                .map(|f| EventId::first_at(f.timestamp_millis()).0),
            status: filter.status.map(EventStatus::as_str),
        }
    }

    /// The window after one that ended at `last` (newest first).
    fn after(self, last: Uuid) -> Self {
        Self {
            before: Some(last),
            ..self
        }
    }
}

/// The candidates of a window (newest first), as the inner query every
/// page joins: ids by the primary key (or the per-source index), at most
/// `$5`, so a window reads a bounded number of rows whatever the status
/// filter leaves. `$1` source, `$2` before, `$3` from, `$4` status.
const WINDOW_SQL: &str = "
    WITH w AS (
        SELECT e.id FROM events e
        WHERE ($1::uuid IS NULL OR e.source_id = $1)
          AND ($2::uuid IS NULL OR e.id < $2)
          AND ($3::uuid IS NULL OR e.id >= $3)
        ORDER BY e.id DESC
        LIMIT $5
    )";

/// One candidate of a window: whether it exists, and whether the status
/// filter (pushed down) kept it.
struct Candidate<T> {
    id: EventId,
    /// `None`: scanned but not shown (no state and not pending, or the
    /// status did not match).
    row: Option<T>,
}

impl PgStore {
    pub(super) fn event(&self, id: EventId) -> StoreResult<Option<StoredEvent>> {
        Ok(self.located_event(id)?.map(|(event, _)| event))
    }

    pub(super) fn located_event(
        &self,
        id: EventId,
    ) -> StoreResult<Option<(StoredEvent, Location)>> {
        let row = self.db.block(async {
            sqlx::query(
                "SELECT e.seq, e.record, s.state::text AS state
                 FROM events e
                 LEFT JOIN event_states s ON s.event_id = e.id
                 LEFT JOIN pending p ON p.event_id = e.id
                 WHERE e.id = $1 AND (s.event_id IS NOT NULL OR p.event_id IS NOT NULL)",
            )
            .bind(id.0)
            .fetch_optional(&self.db.pool)
            .await
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let seq: i64 = row.try_get("seq")?;
        let record: Vec<u8> = row.try_get("record")?;
        let state: Option<String> = row.try_get("state")?;
        let at = location(seq, record.len());
        let event = StoredEvent {
            raw: decode("events", &record)?,
            state: state
                .map(|s| decode("event_states", s.as_bytes()))
                .transpose()?,
        };
        Ok(Some((event, at)))
    }

    pub(super) fn raw_event(&self, id: EventId) -> StoreResult<Option<RawEvent>> {
        Ok(self.event(id)?.map(|e| e.raw))
    }

    pub(super) fn event_state(&self, id: EventId) -> StoreResult<Option<EventState>> {
        let state: Option<String> = self.db.block(async {
            sqlx::query_scalar("SELECT state::text FROM event_states WHERE event_id = $1")
                .bind(id.0)
                .fetch_optional(&self.db.pool)
                .await
        })?;
        state
            .map(|s| decode("event_states", s.as_bytes()))
            .transpose()
    }

    /// Events newest first, filtered; the page and the id to continue
    /// before (after a full page, or where the scan cap stopped it).
    pub(super) fn events_page(
        &self,
        filter: &EventFilter,
    ) -> StoreResult<(Vec<StoredEvent>, Option<EventId>)> {
        let mut window = Window::of(filter);
        let mut out = Vec::new();
        let mut scanned = 0;
        let mut size = filter.limit.max(1);
        while scanned < SCAN_CAP {
            let size_now = size.min(SCAN_CAP - scanned);
            let candidates = self.full_window(window, size_now)?;
            let ended = candidates.len() < size_now;
            for candidate in &candidates {
                scanned += 1;
                let Some(event) = &candidate.row else {
                    continue;
                };
                if filter.matches(event) {
                    out.push(event.clone());
                    if out.len() >= filter.limit {
                        return Ok((out, Some(candidate.id)));
                    }
                }
            }
            let Some(last) = candidates.last() else {
                return Ok((out, None));
            };
            if ended {
                return Ok((out, None));
            }
            window = window.after(last.id.0);
            size = (size * 2).min(WINDOW_MAX);
        }
        // The scan cap was hit before the page filled: go on from there.
        Ok((out, window.before.map(EventId)))
    }

    fn full_window(&self, window: Window, size: usize) -> StoreResult<Vec<Candidate<StoredEvent>>> {
        let sql = format!(
            "{WINDOW_SQL}
            SELECT w.id,
                   CASE WHEN {SHOWN} THEN e.record END AS record,
                   CASE WHEN {SHOWN} THEN s.state::text END AS state
            FROM w
            JOIN events e ON e.id = w.id
            LEFT JOIN event_states s ON s.event_id = w.id
            LEFT JOIN pending p ON p.event_id = w.id
            ORDER BY w.id DESC"
        );
        let rows = self.db.block(async {
            bind_window(sqlx::query(&sql), window, size)
                .fetch_all(&self.db.pool)
                .await
        })?;
        rows.iter()
            .map(|row| {
                let id = EventId(row.try_get("id")?);
                let record: Option<Vec<u8>> = row.try_get("record")?;
                let state: Option<String> = row.try_get("state")?;
                let row = match record {
                    Some(record) => Some(StoredEvent {
                        raw: decode("events", &record)?,
                        state: state
                            .map(|s| decode("event_states", s.as_bytes()))
                            .transpose()?,
                    }),
                    None => None,
                };
                Ok(Candidate { id, row })
            })
            .collect()
    }

    /// A page of events, newest first, as bounded views, within `budget`
    /// (events scanned, state bytes parsed, time), as the embedded backend.
    pub(super) fn summaries_page(
        &self,
        filter: &EventFilter,
        bounds: Bounds,
        budget: ScanBudget,
    ) -> StoreResult<SummaryPage> {
        let started = Instant::now();
        let mut page = SummaryPage {
            events: Vec::new(),
            next: None,
            partial: false,
            scanned: 0,
        };
        let mut window = Window::of(filter);
        let mut bytes = 0;
        let mut last = None;
        let mut size = filter.limit.max(1);
        loop {
            let heads = self.head_window(window, size)?;
            let ended = heads.len() < size;
            let mut matched = Vec::new();
            let mut spent = false;
            let mut asks = Vec::new();
            // First pass: what the light states decide, within the budget.
            let mut decided = Vec::with_capacity(heads.len());
            for candidate in heads {
                spent = page.scanned > 0
                    && (page.scanned >= budget.events.max(1)
                        || bytes >= budget.bytes
                        || started.elapsed() >= budget.time);
                if spent {
                    break;
                }
                page.scanned += 1;
                last = Some(candidate.id);
                let Some(head) = candidate.row else {
                    continue;
                };
                bytes += head.state_bytes;
                let verdict = filter.check(candidate.id, head.state.as_ref());
                if verdict == Verdict::AskPayload && head.record_bytes <= SEARCH_PAYLOAD_MAX {
                    asks.push(candidate.id);
                    bytes += head.record_bytes;
                }
                decided.push((candidate.id, head, verdict));
            }
            let raws = self.raws(&asks)?;
            for (id, head, verdict) in decided {
                let yes = match verdict {
                    Verdict::Yes => true,
                    Verdict::No => false,
                    Verdict::AskPayload => raws.get(&id).is_some_and(|r| filter.payload_matches(r)),
                };
                if yes {
                    matched.push((id, head));
                    if matched.len() + page.events.len() >= filter.limit {
                        break;
                    }
                }
            }
            let full = matched.len() + page.events.len() >= filter.limit;
            let last_matched = matched.last().map(|(id, _)| *id);
            page.events.extend(self.views(matched, bounds)?);
            if full {
                page.next = last_matched;
                return Ok(page);
            }
            if spent {
                page.partial = true;
                page.next = last;
                return Ok(page);
            }
            match last {
                Some(id) if !ended => window = window.after(id.0),
                _ => return Ok(page),
            }
            size = (size * 2).min(WINDOW_MAX);
        }
    }

    /// The light side of a window's candidates: light state (mapped
    /// properties and traits left out, as the embedded light part) and sizes.
    fn head_window(&self, window: Window, size: usize) -> StoreResult<Vec<Candidate<Head>>> {
        let sql = format!(
            "{WINDOW_SQL}
            SELECT w.id, ({SHOWN}) AS shown, e.seq,
                   octet_length(e.record) AS record_bytes,
                   CASE WHEN {SHOWN} THEN ({LIGHT})::text END AS light
            FROM w
            JOIN events e ON e.id = w.id
            LEFT JOIN event_states s ON s.event_id = w.id
            LEFT JOIN pending p ON p.event_id = w.id
            ORDER BY w.id DESC"
        );
        let rows = self.db.block(async {
            bind_window(sqlx::query(&sql), window, size)
                .fetch_all(&self.db.pool)
                .await
        })?;
        rows.iter()
            .map(|row| {
                let id = EventId(row.try_get("id")?);
                let shown: bool = row.try_get("shown")?;
                if !shown {
                    return Ok(Candidate { id, row: None });
                }
                Ok(Candidate {
                    id,
                    row: Some(head_of(row)?),
                })
            })
            .collect()
    }

    /// Whole raw events, by id (what a search looks into), one query.
    fn raws(&self, ids: &[EventId]) -> StoreResult<HashMap<EventId, RawEvent>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let uuids: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
        let rows = self.db.block(async {
            sqlx::query("SELECT id, record FROM events WHERE id = ANY($1)")
                .bind(&uuids)
                .fetch_all(&self.db.pool)
                .await
        })?;
        rows.iter()
            .map(|row| {
                let id = EventId(row.try_get("id")?);
                let record: Vec<u8> = row.try_get("record")?;
                Ok((id, decode("events", &record)?))
            })
            .collect()
    }

    /// Bounded views of events whose heads are read, in the given order:
    /// one query reads each record (whole, or a prefix) and mapped parts
    /// (whole, or an excerpt of their JSON text).
    fn views(&self, heads: Vec<(EventId, Head)>, bounds: Bounds) -> StoreResult<Vec<EventSummary>> {
        if heads.is_empty() {
            return Ok(Vec::new());
        }
        let uuids: Vec<Uuid> = heads.iter().map(|(id, _)| id.0).collect();
        let prefix = (HEAD_ROOM + bounds.excerpt) as i32;
        let cut = bounds.excerpt as i32 + 8;
        let rows = self.db.block(async {
            sqlx::query(
                "SELECT e.id,
                        CASE WHEN octet_length(e.record) <= $2 THEN e.record
                             ELSE substring(e.record FROM 1 FOR $3) END AS record,
                        octet_length((s.state->'mapped'->'properties')::text) AS props_len,
                        CASE WHEN octet_length((s.state->'mapped'->'properties')::text) <= $2
                             THEN (s.state->'mapped'->'properties')::text
                             ELSE left((s.state->'mapped'->'properties')::text, $4) END AS props,
                        octet_length((s.state->'mapped'->'traits')::text) AS traits_len,
                        CASE WHEN octet_length((s.state->'mapped'->'traits')::text) <= $2
                             THEN (s.state->'mapped'->'traits')::text
                             ELSE left((s.state->'mapped'->'traits')::text, $4) END AS traits
                 FROM events e LEFT JOIN event_states s ON s.event_id = e.id
                 WHERE e.id = ANY($1)",
            )
            .bind(&uuids)
            .bind(bounds.whole as i64)
            .bind(prefix)
            .bind(cut)
            .fetch_all(&self.db.pool)
            .await
        })?;
        let mut parts = HashMap::with_capacity(rows.len());
        for row in &rows {
            let id = EventId(row.try_get("id")?);
            parts.insert(id, ViewParts::of(row)?);
        }
        let mut out = Vec::with_capacity(heads.len());
        for (id, head) in heads {
            let Some(view) = parts.remove(&id) else {
                continue;
            };
            out.push(self.view(id, head, view, bounds)?);
        }
        Ok(out)
    }

    fn view(
        &self,
        id: EventId,
        head: Head,
        parts: ViewParts,
        bounds: Bounds,
    ) -> StoreResult<EventSummary> {
        let record_bytes = head.record_bytes;
        let raw = if record_bytes <= bounds.whole {
            whole_or_excerpt(decode("events", &parts.record)?, record_bytes, bounds)
        } else {
            match view_from_prefix(&parts.record, record_bytes, bounds)? {
                Some(view) => view,
                // Not the layout expected: read it whole rather than show nothing.
                None => {
                    tracing::warn!(event = %id, "event record head not found in its prefix");
                    let raw = self.raw_event(id)?.ok_or(StoreError::Malformed {
                        tree: "events",
                        what: "an event gone while it was read",
                    })?;
                    whole_or_excerpt(raw, record_bytes, bounds)
                }
            }
        };
        let (properties, traits) = match head.state {
            Some(_) => (
                map_shown(parts.properties, bounds)?,
                map_shown(parts.traits, bounds)?,
            ),
            None => (Shown::Whole(Map::new()), Shown::Whole(Map::new())),
        };
        Ok(raw.into_summary(record_bytes, head.state, properties, traits))
    }

    pub(super) fn event_summary(
        &self,
        id: EventId,
        bounds: Bounds,
    ) -> StoreResult<Option<EventSummary>> {
        let row = self.db.block(async {
            sqlx::query(&format!(
                "SELECT e.seq, octet_length(e.record) AS record_bytes, ({LIGHT})::text AS light
                 FROM events e
                 LEFT JOIN event_states s ON s.event_id = e.id
                 LEFT JOIN pending p ON p.event_id = e.id
                 WHERE e.id = $1 AND {SHOWN_ANY}"
            ))
            .bind(id.0)
            .fetch_optional(&self.db.pool)
            .await
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let head = head_of(&row)?;
        Ok(self.views(vec![(id, head)], bounds)?.pop())
    }

    /// The stored record of an event as JSON, whole (the scrubbed copy of
    /// an erased one: erasure rewrites the row).
    pub(super) fn raw_record(&self, id: EventId) -> StoreResult<Option<Vec<u8>>> {
        let record: Option<Vec<u8>> = self.db.block(async {
            sqlx::query_scalar(&format!(
                "SELECT e.record FROM events e
                 LEFT JOIN event_states s ON s.event_id = e.id
                 LEFT JOIN pending p ON p.event_id = e.id
                 WHERE e.id = $1 AND {SHOWN_ANY}"
            ))
            .bind(id.0)
            .fetch_optional(&self.db.pool)
            .await
        })?;
        Ok(record)
    }

    pub(super) fn scan_permits(&self) -> Arc<tokio::sync::Semaphore> {
        self.scans.clone()
    }

    /// Processed event ids of one source oldest first, after `after` (replay).
    pub(super) fn source_event_ids(
        &self,
        source: SourceId,
        after: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<EventId>> {
        let ids: Vec<Uuid> = self.db.block(async {
            sqlx::query_scalar(
                "SELECT event_id FROM event_states
                 WHERE source_id = $1 AND ($2::uuid IS NULL OR event_id > $2)
                 ORDER BY event_id LIMIT $3",
            )
            .bind(source.0)
            .bind(after.map(|a| a.0))
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.db.pool)
            .await
        })?;
        Ok(ids.into_iter().map(EventId).collect())
    }

    /// Processed events stored (for retention). A count of the states'
    /// primary key: a full index scan, run by the periodic maintenance only.
    pub(super) fn stored_events(&self) -> StoreResult<u64> {
        let n: i64 = self.db.block(async {
            sqlx::query_scalar("SELECT count(*) FROM event_states")
                .fetch_one(&self.db.pool)
                .await
        })?;
        Ok(n.max(0) as u64)
    }
}

/// Whether a candidate is shown: it exists (pending or processed) and
/// passes the pushed-down status (`$4`; a pending event's status is
/// `pending`).
const SHOWN: &str = "((s.event_id IS NOT NULL OR p.event_id IS NOT NULL)
    AND ($4::text IS NULL OR COALESCE(s.status, 'pending') = $4))";
/// Whether an event exists, without a status filter.
const SHOWN_ANY: &str = "(s.event_id IS NOT NULL OR p.event_id IS NOT NULL)";
/// A state's light part: the mapped properties and traits emptied (they
/// are read bounded, apart).
const LIGHT: &str = "CASE WHEN s.state ? 'mapped' AND jsonb_typeof(s.state->'mapped') = 'object'
    THEN jsonb_set(jsonb_set(s.state, '{mapped,properties}', '{}'), '{mapped,traits}', '{}')
    ELSE s.state END";

fn bind_window(
    query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    window: Window,
    size: usize,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(window.source)
        .bind(window.before)
        .bind(window.from)
        .bind(window.status)
        .bind(size as i64)
}

/// Where an event "is": PostgreSQL has no log offsets; its row's sequence
/// number and record size stand in (`segment` 0).
pub(super) fn location(seq: i64, len: usize) -> Location {
    Location {
        segment: 0,
        offset: seq.max(0) as u64,
        len: len.min(u32::MAX as usize) as u32,
    }
}

/// What a scan reads of an event before deciding whether it matches.
struct Head {
    /// `None` for an event still pending.
    state: Option<EventState>,
    state_bytes: usize,
    record_bytes: usize,
}

fn head_of(row: &sqlx::postgres::PgRow) -> StoreResult<Head> {
    let light: Option<String> = row.try_get("light")?;
    let record_bytes: i32 = row.try_get("record_bytes")?;
    let state_bytes = light.as_ref().map_or(0, String::len);
    Ok(Head {
        state: light
            .map(|s| decode("event_states", s.as_bytes()))
            .transpose()?,
        state_bytes,
        record_bytes: record_bytes.max(0) as usize,
    })
}

/// What a view reads beyond the head.
struct ViewParts {
    /// The whole record, or a prefix of it.
    record: Vec<u8>,
    properties: Part,
    traits: Part,
}

/// A mapped part's JSON text (whole or cut) and its full size.
struct Part {
    text: Option<String>,
    bytes: usize,
}

impl ViewParts {
    fn of(row: &sqlx::postgres::PgRow) -> StoreResult<Self> {
        let part = |text: &str, len: &str| -> StoreResult<Part> {
            let bytes: Option<i32> = row.try_get(len)?;
            Ok(Part {
                text: row.try_get(text)?,
                bytes: bytes.unwrap_or(0).max(0) as usize,
            })
        };
        Ok(Self {
            record: row.try_get("record")?,
            properties: part("props", "props_len")?,
            traits: part("traits", "traits_len")?,
        })
    }
}

fn map_shown(part: Part, bounds: Bounds) -> StoreResult<MapShown> {
    let Some(text) = part.text else {
        return Ok(Shown::Whole(Map::new()));
    };
    if part.bytes <= bounds.whole {
        return Ok(Shown::Whole(decode("event_states", text.as_bytes())?));
    }
    Ok(Shown::Cut {
        excerpt: excerpt::of_text(text.as_bytes(), bounds.excerpt, true),
        bytes: part.bytes,
    })
}

/// The fixed fields a record serialises before its payload.
/// A large record's view from its first bytes; `None` when the head is not
/// where `RawEvent`'s serialisation puts it.
fn view_from_prefix(
    prefix: &[u8],
    record_bytes: usize,
    bounds: Bounds,
) -> StoreResult<Option<RawView>> {
    let split = prefix
        .get(..HEAD_ROOM.min(prefix.len()))
        .and_then(|h| h.windows(PAYLOAD_KEY.len()).position(|w| w == PAYLOAD_KEY));
    let Some(split) = split else {
        return Ok(None);
    };
    let mut head_json = prefix[..split].to_vec();
    head_json.push(b'}');
    let head: RecordHead = decode("events", &head_json)?;
    let payload = &prefix[split + PAYLOAD_KEY.len()..];
    Ok(Some(RawView {
        head,
        payload: Shown::Cut {
            excerpt: excerpt::of_text(payload, bounds.excerpt, true),
            bytes: record_bytes,
        },
        envelope: None,
        headers: Arc::default(),
        not_mappable: None,
    }))
}
