//! Which events a list or search asks for.

use crate::domain::identity::{lowercase_email, trim};
use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::{EventState, EventStatus, RawEvent};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// What to list from the event log.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub source_id: Option<SourceId>,
    pub status: Option<EventStatus>,
    /// Matches an email, external id, visitor id, event id or profile id,
    /// or any scalar value of the raw payload (see [`EventFilter::check`]).
    pub search: Option<String>,
    pub limit: usize,
    pub before: Option<EventId>,
    /// The mapped event name, compared ignoring ASCII case.
    pub name: Option<String>,
    /// Received at or after (to the millisecond of the event id).
    pub from: Option<DateTime<Utc>>,
    /// Received at or before (to the millisecond of the event id).
    pub to: Option<DateTime<Utc>>,
}

/// What the light state of an event says about a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Yes,
    No,
    /// Everything but the search passed and the search matched nothing the
    /// state holds: only the payload can tell (an event that failed or was
    /// not mapped has no mapped identifiers, and an order number is never
    /// one).
    AskPayload,
}

impl EventFilter {
    /// The search as compared: trimmed like identifiers are, and
    /// ASCII-lowercased when it looks like an email (as profile lookup
    /// normalises emails), so `  Ada@Example.COM ` finds `ada@example.com`.
    pub fn needle(&self) -> Option<String> {
        let needle = trim(self.search.as_deref()?);
        if needle.is_empty() {
            return None;
        }
        Some(if looks_like_email(needle) {
            lowercase_email(needle)
        } else {
            needle.to_string()
        })
    }

    /// Whether a search is asked for (the only part that may read payloads).
    pub fn searches(&self) -> bool {
        self.needle().is_some()
    }

    /// Whether a list needs a bounded scan (anything but source and paging).
    pub fn scans(&self) -> bool {
        self.searches() || self.status.is_some() || self.name.is_some() || self.from.is_some()
    }

    /// The exclusive upper end of the scan: `before`, or just after `to`'s
    /// millisecond. Event ids are UUID v7, so an id bound is a time bound
    /// and a date range costs no scan past its end.
    pub fn upper_bound(&self) -> Option<EventId> {
        let after_to = self
            .to
            .map(|to| EventId::first_at(to.timestamp_millis() + 1));
        match (self.before, after_to) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True once a scan, going newest first, has passed `from`: nothing
    /// older can match.
    pub fn is_before_range(&self, id: EventId) -> bool {
        self.from
            .is_some_and(|from| id < EventId::first_at(from.timestamp_millis()))
    }

    /// Whether an event (its id and, once processed, its light state)
    /// passes the filter, or whether its payload must be asked. The state
    /// part costs one light state read per candidate; a payload is read
    /// only for a search the state did not answer.
    pub fn check(&self, id: EventId, state: Option<&EventState>) -> Verdict {
        let status = state.and_then(|s| s.status).unwrap_or(EventStatus::Pending);
        if self.status.is_some_and(|s| status != s) {
            return Verdict::No;
        }
        if self.is_before_range(id) || self.upper_bound().is_some_and(|upper| id >= upper) {
            return Verdict::No;
        }
        if let Some(name) = self.name.as_deref().map(trim).filter(|n| !n.is_empty()) {
            let mapped_name = state
                .and_then(|s| s.mapped.as_ref())
                .map(|m| m.name.as_str());
            if !mapped_name.is_some_and(|m| m.eq_ignore_ascii_case(name)) {
                return Verdict::No;
            }
        }
        let Some(needle) = self.needle() else {
            return Verdict::Yes;
        };
        if id.to_string() == needle || state.is_some_and(|s| state_has(s, &needle)) {
            return Verdict::Yes;
        }
        Verdict::AskPayload
    }

    /// Whether a raw event's payload or envelope holds the search as a
    /// whole scalar value, anywhere in it: `q=10` matches `10` and `"10"`,
    /// never `"100"` or a key; an email matches ignoring ASCII case and
    /// surrounding spaces.
    pub fn payload_matches(&self, raw: &RawEvent) -> bool {
        let Some(needle) = self.needle() else {
            return true;
        };
        let mut parts = vec![&raw.payload];
        parts.extend(raw.envelope.as_deref());
        has_scalar(parts, &needle)
    }

    /// The whole decision for an event already read whole.
    pub fn matches(&self, event: &StoredEvent) -> bool {
        match self.check(event.raw.id, event.state.as_ref()) {
            Verdict::Yes => true,
            Verdict::No => false,
            Verdict::AskPayload => self.payload_matches(&event.raw),
        }
    }
}

/// Which end of a date range a value gives: a bare date is the first
/// millisecond of its day for `From` and the last for `To`, so
/// `from=2026-12-01&to=2026-12-01` is that whole day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeEnd {
    From,
    To,
}

/// A `from=` / `to=` value: RFC 3339 (`2026-12-01T10:00:00Z`) or a UTC
/// date (`2026-12-01`); `None` when it is neither.
pub fn parse_range_bound(text: &str, end: RangeEnd) -> Option<DateTime<Utc>> {
    let text = trim(text);
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let at = match end {
        RangeEnd::From => day.and_hms_milli_opt(0, 0, 0, 0)?,
        RangeEnd::To => day.and_hms_milli_opt(23, 59, 59, 999)?,
    };
    Some(at.and_utc())
}

fn looks_like_email(value: &str) -> bool {
    value.contains('@')
}

/// The state's ids and mapped identifiers against a normalised needle.
fn state_has(state: &EventState, needle: &str) -> bool {
    let profile_hit = state.profile_id.is_some_and(|p| p.to_string() == needle);
    let mapped_hit = state.mapped.as_ref().is_some_and(|m| {
        m.email
            .as_deref()
            .is_some_and(|e| trim(e).eq_ignore_ascii_case(needle))
            || m.external_id.as_deref() == Some(needle)
            || m.visitor_id.as_deref() == Some(needle)
            || m.event_id.as_deref() == Some(needle)
    });
    profile_hit || mapped_hit
}

/// A depth-first walk (a stack, not recursion: payloads nest as deep as
/// the decoder allows) looking for a string or number equal to `needle`.
fn has_scalar(roots: Vec<&Value>, needle: &str) -> bool {
    let email = looks_like_email(needle);
    let mut stack = roots;
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) => {
                let s = trim(s);
                if s == needle || (email && s.eq_ignore_ascii_case(needle)) {
                    return true;
                }
            }
            Value::Number(n) => {
                if n.to_string() == needle {
                    return true;
                }
            }
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            Value::Bool(_) | Value::Null => {}
        }
    }
    false
}

/// A stored event with whatever the processor has decided about it.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub raw: RawEvent,
    /// `None` while the event waits for the processor.
    pub state: Option<EventState>,
}

impl StoredEvent {
    pub fn status(&self) -> EventStatus {
        self.state
            .as_ref()
            .and_then(|s| s.status)
            .unwrap_or(EventStatus::Pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn search(q: &str) -> EventFilter {
        EventFilter {
            search: Some(q.into()),
            ..EventFilter::default()
        }
    }

    fn raw(payload: Value) -> RawEvent {
        RawEvent::received(SourceId::new(), payload)
    }

    #[test]
    fn a_search_matches_whole_scalars_only() {
        let event = raw(json!({"order": {"number": 10, "ref": "A-100"}, "n": "100"}));
        assert!(search("10").payload_matches(&event));
        assert!(search("A-100").payload_matches(&event));
        assert!(!search("A-10").payload_matches(&event));
        assert!(!search("order").payload_matches(&event));
        assert!(!search("1").payload_matches(&event));
    }

    #[test]
    fn an_email_search_is_normalised_like_a_lookup() {
        let event = raw(json!({"rows": [{"user": " Ada@Example.COM "}]}));
        assert!(search("  ada@EXAMPLE.com ").payload_matches(&event));
        assert_eq!(search(" A@B.c ").needle().as_deref(), Some("a@b.c"));
    }

    #[test]
    fn range_bounds_take_rfc3339_or_a_whole_day() {
        let day = |end| parse_range_bound("2026-12-01", end).map(|t| t.to_rfc3339());
        assert_eq!(
            day(RangeEnd::From).as_deref(),
            Some("2026-12-01T00:00:00+00:00")
        );
        assert_eq!(
            day(RangeEnd::To).as_deref(),
            Some("2026-12-01T23:59:59.999+00:00")
        );
        let at = parse_range_bound("2026-12-01T10:00:00+01:00", RangeEnd::To).unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-01T09:00:00+00:00");
        assert_eq!(parse_range_bound("yesterday", RangeEnd::From), None);
        assert_eq!(parse_range_bound("2026-13-01", RangeEnd::From), None);
    }

    #[test]
    fn a_date_range_is_an_id_range() {
        let from: DateTime<Utc> = "2026-01-02T00:00:00Z".parse().unwrap();
        let filter = EventFilter {
            from: Some(from),
            to: Some(from),
            ..EventFilter::default()
        };
        let at = EventId::first_at(from.timestamp_millis());
        assert_eq!(filter.check(at, None), Verdict::Yes);
        assert!(filter.is_before_range(EventId::first_at(from.timestamp_millis() - 1)));
        assert_eq!(
            filter.check(EventId::first_at(from.timestamp_millis() + 1), None),
            Verdict::No
        );
    }
}
