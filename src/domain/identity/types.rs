//! The serde types the resolver reads and writes.
//!
//! They live apart from the logic so the store, the routes and the tests can
//! name them without pulling in the resolution rules.

use crate::domain::ids::{EventId, ProfileId, SourceId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

/// At most this many external ids per profile (events never exceed it;
/// only a manual merge can).
pub const MAX_EXTERNAL_IDS: usize = 1;
/// At most this many emails per profile.
pub const MAX_EMAILS: usize = 5;
/// At most this many visitor ids per profile.
pub const MAX_VISITOR_IDS: usize = 100;
/// At most this many merges folded into one profile.
pub const MAX_MERGES: u32 = 100;

/// The three identifier kinds. The declaration order is the priority order
/// (derive `Ord`): a smaller value is a stronger identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentKind {
    ExternalId,
    Email,
    VisitorId,
}

impl IdentKind {
    /// The field name used in warnings and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentKind::ExternalId => "external_id",
            IdentKind::Email => "email",
            IdentKind::VisitorId => "visitor_id",
        }
    }
}

/// A typed, normalised identifier: the same text as two kinds is two keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum IdentKey {
    External(String),
    Email(String),
    Visitor(String),
}

impl IdentKey {
    /// Builds a key of `kind` around `value`.
    pub fn new(kind: IdentKind, value: impl Into<String>) -> Self {
        let value = value.into();
        match kind {
            IdentKind::ExternalId => IdentKey::External(value),
            IdentKind::Email => IdentKey::Email(value),
            IdentKind::VisitorId => IdentKey::Visitor(value),
        }
    }

    pub fn kind(&self) -> IdentKind {
        match self {
            IdentKey::External(_) => IdentKind::ExternalId,
            IdentKey::Email(_) => IdentKind::Email,
            IdentKey::Visitor(_) => IdentKind::VisitorId,
        }
    }

    pub fn value(&self) -> &str {
        match self {
            IdentKey::External(v) | IdentKey::Email(v) | IdentKey::Visitor(v) => v,
        }
    }

    /// The `ident` tree key: a kind prefix keeps the kinds from colliding.
    pub fn to_key_bytes(&self) -> Vec<u8> {
        let prefix: &[u8] = match self {
            IdentKey::External(_) => b"x:",
            IdentKey::Email(_) => b"e:",
            IdentKey::Visitor(_) => b"v:",
        };
        let mut key = Vec::with_capacity(prefix.len() + self.value().len());
        key.extend_from_slice(prefix);
        key.extend_from_slice(self.value().as_bytes());
        key
    }
}

/// The identifiers carried by one event (raw before `normalise`, clean after).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifiers {
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub visitor_id: Option<String>,
}

impl Identifiers {
    /// The present identifiers as keys, strongest first.
    pub fn keys(&self) -> Vec<IdentKey> {
        [
            (IdentKind::ExternalId, &self.external_id),
            (IdentKind::Email, &self.email),
            (IdentKind::VisitorId, &self.visitor_id),
        ]
        .into_iter()
        .filter_map(|(kind, v)| v.as_ref().map(|v| IdentKey::new(kind, v.clone())))
        .collect()
    }
}

/// One trait value with the event that set it, so "newest event wins" can be
/// decided the same way whatever order events (or merges) arrive in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraitValue {
    pub value: Value,
    pub at: DateTime<Utc>,
    pub event_id: EventId,
}

impl TraitValue {
    /// True when `self` should replace `other`: newer timestamp, ties by event id.
    pub fn beats(&self, other: &TraitValue) -> bool {
        (self.at, self.event_id) > (other.at, other.event_id)
    }
}

/// A resolved person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub id: ProfileId,
    pub external_ids: Vec<String>,
    pub emails: Vec<String>,
    pub visitor_ids: Vec<String>,
    pub traits: BTreeMap<String, TraitValue>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub event_count: u64,
    /// Every profile id ever absorbed into this one (transitively), so the
    /// redirects to them can be repointed and their events listed.
    pub merged_from: Vec<ProfileId>,
    pub merge_count: u32,
    pub created_at: DateTime<Utc>,
}

impl Profile {
    /// An empty profile first seen at `at`.
    pub fn new(id: ProfileId, at: DateTime<Utc>) -> Self {
        Self {
            id,
            external_ids: Vec::new(),
            emails: Vec::new(),
            visitor_ids: Vec::new(),
            traits: BTreeMap::new(),
            first_seen: at,
            last_seen: at,
            event_count: 0,
            merged_from: Vec::new(),
            merge_count: 0,
            created_at: Utc::now(),
        }
    }

    /// Every identifier of the profile as a key.
    pub fn keys(&self) -> Vec<IdentKey> {
        let x = self
            .external_ids
            .iter()
            .map(|v| IdentKey::External(v.clone()));
        let e = self.emails.iter().map(|v| IdentKey::Email(v.clone()));
        let v = self
            .visitor_ids
            .iter()
            .map(|v| IdentKey::Visitor(v.clone()));
        x.chain(e).chain(v).collect()
    }

    /// The list holding identifiers of `kind`.
    pub fn list(&self, kind: IdentKind) -> &Vec<String> {
        match kind {
            IdentKind::ExternalId => &self.external_ids,
            IdentKind::Email => &self.emails,
            IdentKind::VisitorId => &self.visitor_ids,
        }
    }

    fn list_mut(&mut self, kind: IdentKind) -> &mut Vec<String> {
        match kind {
            IdentKind::ExternalId => &mut self.external_ids,
            IdentKind::Email => &mut self.emails,
            IdentKind::VisitorId => &mut self.visitor_ids,
        }
    }

    /// Adds an identifier unless already there; true when added.
    pub fn add_key(&mut self, key: &IdentKey) -> bool {
        let list = self.list_mut(key.kind());
        if list.iter().any(|v| v == key.value()) {
            return false;
        }
        list.push(key.value().to_owned());
        true
    }

    /// Sets a trait unless the stored value comes from a newer event.
    pub fn set_trait(&mut self, name: &str, candidate: TraitValue) {
        match self.traits.get(name) {
            Some(current) if !candidate.beats(current) => {}
            _ => {
                self.traits.insert(name.to_owned(), candidate);
            }
        }
    }

    /// Records that an event at `at` belongs here.
    pub fn touch(&mut self, at: DateTime<Utc>) {
        self.first_seen = self.first_seen.min(at);
        self.last_seen = self.last_seen.max(at);
        self.event_count = self.event_count.saturating_add(1);
    }

    /// Survivor order: a profile with an external id wins, else the oldest.
    pub fn survives_over(&self, other: &Profile) -> bool {
        let mine = (self.external_ids.is_empty(), self.created_at, self.id);
        let theirs = (other.external_ids.is_empty(), other.created_at, other.id);
        mine < theirs
    }
}

/// What the pipeline hands the resolver for one event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolveInput {
    pub event_id: EventId,
    pub source_id: SourceId,
    /// The event timestamp (not the arrival time): it orders traits.
    pub at: DateTime<Utc>,
    /// Raw identifiers, before normalisation.
    pub ids: Identifiers,
    pub traits: Map<String, Value>,
}

/// Why an identifier was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    ExternalIdConflict,
    LimitExceeded,
    BlockedValue,
    InvalidEmail,
    TooLong,
    ControlCharacter,
    /// A format character (zero-width space, joiners, BOM, bidi controls,
    /// soft hyphen…) or another code point that renders as nothing.
    InvisibleCharacter,
    /// A space other than U+0020 (no-break, en, ideographic…).
    UnusualSpace,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::ExternalIdConflict => "external_id_conflict",
            RefusalReason::LimitExceeded => "limit_exceeded",
            RefusalReason::BlockedValue => "blocked_value",
            RefusalReason::InvalidEmail => "invalid_email",
            RefusalReason::TooLong => "too_long",
            RefusalReason::ControlCharacter => "control_character",
            RefusalReason::InvisibleCharacter => "invisible_character",
            RefusalReason::UnusualSpace => "unusual_space",
        }
    }
}

/// One identifier the resolver refused, with why. The value is kept (support
/// needs it to explain a split profile) but bounded in length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub kind: IdentKind,
    pub value: String,
    pub reason: RefusalReason,
}

impl Refusal {
    /// Longest value excerpt kept in a refusal.
    const MAX_VALUE_CHARS: usize = 64;

    pub fn new(kind: IdentKind, value: &str, reason: RefusalReason) -> Self {
        let mut shown: String = value
            .chars()
            .take(Self::MAX_VALUE_CHARS)
            .flat_map(char::escape_default)
            .collect();
        if value.chars().count() > Self::MAX_VALUE_CHARS {
            shown.push('…');
        }
        Self {
            kind,
            value: shown,
            reason,
        }
    }

    /// The human warning stored on the event.
    pub fn warning(&self) -> String {
        format!("{} dropped: {}", self.kind.as_str(), self.reason.as_str())
    }
}

/// What the resolver did with the event's profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    Create,
    Attach,
    Merge {
        absorbed: Vec<ProfileId>,
    },
    /// No usable identifier: the event is kept but joins no profile.
    None,
}

/// The result of resolving one event (folded into the event's state).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub profile_id: Option<ProfileId>,
    pub action: Action,
    pub refusals: Vec<Refusal>,
    pub warnings: Vec<String>,
}

impl Outcome {
    /// `create`, `attach`, `merge`, or `refused: <reason>`.
    pub fn summary(&self) -> String {
        match &self.action {
            Action::Create => "create".into(),
            Action::Attach => "attach".into(),
            Action::Merge { .. } => "merge".into(),
            Action::None => match self.refusals.first() {
                Some(r) => format!("refused: {}", r.reason.as_str()),
                None => "refused: no_identifier".into(),
            },
        }
    }
}

/// One line of a profile's history. Key: profile id ‖ audit id, so the
/// history of a profile is a prefix scan in time order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// UUID v7: sorts by time.
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub profile_id: ProfileId,
    /// `create`, `attach`, `merge`, `refusal`, `manual_merge` or `erasure`.
    pub kind: String,
    pub event_id: Option<EventId>,
    pub detail: Value,
}

impl AuditEntry {
    pub fn new(
        profile_id: ProfileId,
        kind: &str,
        event_id: Option<EventId>,
        detail: Value,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            at: Utc::now(),
            profile_id,
            kind: kind.to_owned(),
            event_id,
            detail,
        }
    }

    /// The `audit` tree key.
    pub fn key_bytes(&self) -> [u8; 32] {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&self.profile_id.to_bytes());
        key[16..].copy_from_slice(self.id.as_bytes());
        key
    }
}
