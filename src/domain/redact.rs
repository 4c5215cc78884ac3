//! Erasure policy: which values of a profile count as its personal data,
//! how they are searched for, and what replaces a record that held them.
//!
//! The storage backend applies this policy (it scans its trees or tables
//! and its log, and overwrites what these functions return); it decides
//! none of it, so a second backend erases exactly what the first does.
//!
//! - Identifiers (emails, external ids, visitor ids) are searched for
//!   everywhere; trait values (a name, a city) only in the person's own
//!   records: elsewhere a trait value such as a plan name is no evidence of
//!   this person (see [`PersonalValues`]).
//! - Values are searched for as text, JSON-escaped and form-encoded, ASCII
//!   case-insensitively ([`Needles`]); values shorter than
//!   [`MIN_VALUE_CHARS`] are not searched for (they would match unrelated
//!   text), though the profile and its events lose them anyway.

use crate::domain::identity::Profile;
use crate::domain::model::{ErrorEntry, EventState, RawEvent};
use aho_corasick::AhoCorasick;
use serde_json::Value;
use std::collections::BTreeSet;

/// Shorter values are not searched for outside the profile's own records.
pub const MIN_VALUE_CHARS: usize = 4;

/// What an erased event's log record (after its ids) is overwritten with;
/// the rest of the record's bytes are blanked, so the record keeps its
/// length and every other record its place. The same JSON as
/// [`erased_payload`], so the record still decodes as a payload.
pub const LOG_MARKER: &[u8] = br#"{"_erased":true}"#;

/// What replaces a message or text that held an erased value.
pub const REDACTED: &str = "(redacted: it held personal data of an erased profile)";

/// The payload an erased event reads back with.
pub fn erased_payload() -> Value {
    serde_json::json!({"_erased": true})
}

/// The erasure's search terms could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct NeedlesError(#[from] aho_corasick::BuildError);

/// The values of one erasure, compiled for searching.
pub struct Needles {
    matcher: Option<AhoCorasick>,
    forms: usize,
}

impl Needles {
    /// Every value of `MIN_VALUE_CHARS` or more, as text, JSON-escaped and
    /// form-encoded (an error excerpt of a form body holds `ann%40x.io`).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self, NeedlesError> {
        let mut forms = BTreeSet::new();
        for value in values {
            let value = value.trim();
            if value.chars().count() < MIN_VALUE_CHARS {
                continue;
            }
            forms.insert(value.to_string());
            // A `str` always serialises; the `Err` arm is unreachable.
            if let Ok(quoted) = serde_json::to_string(value) {
                if let Some(escaped) = quoted.get(1..quoted.len().saturating_sub(1)) {
                    forms.insert(escaped.to_string());
                }
            }
            forms.insert(form_urlencoded::byte_serialize(value.as_bytes()).collect());
        }
        let matcher = if forms.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(&forms)?,
            )
        };
        Ok(Self {
            matcher,
            forms: forms.len(),
        })
    }

    pub fn is_match(&self, haystack: impl AsRef<[u8]>) -> bool {
        self.matcher
            .as_ref()
            .is_some_and(|m| m.is_match(haystack.as_ref()))
    }

    /// How many forms are searched for.
    pub fn len(&self) -> usize {
        self.forms
    }

    pub fn is_empty(&self) -> bool {
        self.forms == 0
    }
}

/// An erasure's values: identifiers are searched for everywhere, the rest
/// (trait values) only in this person's own records (see the module doc).
#[derive(Default)]
pub struct PersonalValues {
    identifiers: BTreeSet<String>,
    traits: BTreeSet<String>,
}

impl PersonalValues {
    /// The profile's identifiers and the scalars inside its trait values.
    pub fn of_profile(profile: &Profile) -> Self {
        let mut values = PersonalValues::default();
        // Every kind, a team's own included.
        let ids = profile.keys().into_iter().map(|k| k.value);
        values.identifiers.extend(ids);
        for t in profile.traits.values() {
            scalar_texts(&t.value, &mut values.traits);
        }
        values
    }

    /// What an event's mapped state held: the raw form of its identifiers
    /// (before normalisation, e.g. `Ann@Example.org`) and its traits.
    pub fn add_state(&mut self, state: &EventState) {
        let Some(mapped) = state.mapped.as_deref() else {
            return;
        };
        let ids = [&mapped.email, &mapped.external_id, &mapped.visitor_id];
        self.identifiers.extend(ids.into_iter().flatten().cloned());
        self.identifiers
            .extend(mapped.identifiers.values().cloned());
        for value in mapped.traits.values() {
            scalar_texts(value, &mut self.traits);
        }
    }

    /// The identifiers alone (searched for everywhere), and every value
    /// (searched for in the person's own records).
    pub fn needles(&self) -> Result<(Needles, Needles), NeedlesError> {
        let ids = Needles::new(self.identifiers.iter().map(String::as_str))?;
        let all = self.identifiers.iter().chain(&self.traits);
        Ok((ids, Needles::new(all.map(String::as_str))?))
    }
}

/// The strings and numbers inside a value (walked with a stack: a trait
/// value's depth is the sender's choice).
fn scalar_texts(value: &Value, out: &mut BTreeSet<String>) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => {
                out.insert(s.clone());
            }
            Value::Number(n) => {
                out.insert(n.to_string());
            }
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            Value::Bool(_) | Value::Null => {}
        }
    }
}

/// An erased event as it reads back: the payload is the marker, envelope
/// and headers go, a `not_mappable` reason holding a personal value is
/// redacted. Its ids, source and times remain, so counts and audit stay
/// consistent.
pub fn scrub_raw(raw: &mut RawEvent, personal: &Needles) {
    raw.payload = erased_payload();
    raw.envelope = None;
    raw.headers = Default::default();
    if raw
        .not_mappable
        .as_deref()
        .is_some_and(|r| personal.is_match(r))
    {
        raw.not_mappable = Some(REDACTED.into());
    }
}

/// Clears what a processed state copied from the event (its status stays).
pub fn scrub_state(state: &mut EventState, personal: &Needles) {
    if let Some(mapped) = state.mapped.as_mut().map(std::sync::Arc::make_mut) {
        mapped.email = None;
        mapped.external_id = None;
        mapped.visitor_id = None;
        mapped.identifiers.clear();
        mapped.event_id = None;
        mapped.idempotency_key = None;
        mapped.traits.clear();
        mapped.properties.clear();
    }
    state.profile_id = None;
    state.warnings.clear();
    // The refusal messages name the refused value (`email `x` dropped`).
    state.identity_refused.clear();
    for error in &mut state.errors {
        if personal.is_match(error.as_bytes()) {
            *error = REDACTED.to_string();
        }
    }
}

/// Redacts an error-log entry whose excerpt or message holds one of
/// `needles`: the excerpt goes, a message holding one is replaced. Returns
/// whether the entry changed (and must be written back).
pub fn redact_error(entry: &mut ErrorEntry, needles: &Needles) -> bool {
    let excerpt_hit = entry
        .excerpt
        .as_deref()
        .is_some_and(|e| needles.is_match(e));
    let message_hit = needles.is_match(&entry.message);
    if !(excerpt_hit || message_hit) {
        return false;
    }
    entry.excerpt = None;
    if message_hit {
        entry.message = REDACTED.to_string();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needles_find_plain_escaped_and_form_encoded_forms_ignoring_ascii_case() {
        let n = Needles::new(["Ann@Example.org", "Zoë \"Z\" Lee", "abc"]).unwrap();
        assert!(n.is_match("x ann@example.ORG y"));
        assert!(n.is_match("email=ann%40example.org"));
        assert!(n.is_match(r#"{"name":"Zoë \"Z\" Lee"}"#));
        assert!(n.is_match("Zoë \"Z\" Lee"));
        // Too short to search for.
        assert!(!n.is_match("abc"));
        assert!(!Needles::new(["ab"]).unwrap().is_match("ab"));
    }

    #[test]
    fn the_log_marker_is_the_erased_payload() {
        let marker: Value = serde_json::from_slice(LOG_MARKER).unwrap();
        assert_eq!(marker, erased_payload());
    }

    #[test]
    fn a_scrubbed_state_keeps_no_identifier_of_any_kind() {
        use crate::domain::identity::KindName;
        use crate::domain::model::MappedEvent;
        let kind = KindName::parse("stripe_customer_id").unwrap();
        let mapped = MappedEvent {
            name: "paid".into(),
            visitor_id: None,
            email: Some("ann@example.org".into()),
            external_id: None,
            event_id: None,
            timestamp: chrono::Utc::now(),
            properties: Default::default(),
            traits: Default::default(),
            idempotency_key: None,
            mapping_version: 1,
            identifiers: [(kind, "cus_A42".to_string())].into_iter().collect(),
        };
        let mut state = EventState {
            mapped: Some(std::sync::Arc::new(mapped)),
            identity_refused: vec!["email `ann@example.org` dropped: external_id_conflict".into()],
            ..EventState::default()
        };
        let mut values = PersonalValues::default();
        values.add_state(&state);
        assert!(values.identifiers.contains("cus_A42"));
        scrub_state(&mut state, &Needles::new(["ann@example.org"]).unwrap());
        let text = serde_json::to_string(&state).unwrap();
        assert!(
            !text.contains("cus_A42") && !text.contains("ann@"),
            "{text}"
        );
    }
}
