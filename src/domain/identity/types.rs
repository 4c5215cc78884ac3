//! The serde types the resolver reads and writes.
//!
//! They live apart from the logic so the store, the routes and the tests can
//! name them without pulling in the resolution rules.

use super::kinds::{IdentKind, KindName, KindSet};
use crate::domain::ids::{EventId, ProfileId, SourceId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

/// At most this many merges folded into one profile.
pub const MAX_MERGES: u32 = 100;

/// A typed, normalised identifier: the same text as two kinds is two keys.
/// Stored and shown as `{"kind", "value"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IdentKey {
    pub kind: IdentKind,
    pub value: String,
}

impl IdentKey {
    /// Builds a key of `kind` around `value`.
    pub fn new(kind: IdentKind, value: impl Into<String>) -> Self {
        Self {
            kind,
            value: value.into(),
        }
    }

    pub fn kind(&self) -> &IdentKind {
        &self.kind
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// The `ident` index key: a kind prefix keeps the kinds from colliding.
    /// The built-ins keep the one-letter prefixes data dirs already hold; a
    /// team's kind is `k:<name>:` (a name holds no `:`).
    pub fn to_key_bytes(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.value.len() + 8);
        match &self.kind {
            IdentKind::ExternalId => key.extend_from_slice(b"x:"),
            IdentKind::Email => key.extend_from_slice(b"e:"),
            IdentKind::VisitorId => key.extend_from_slice(b"v:"),
            IdentKind::Custom(name) => {
                key.extend_from_slice(b"k:");
                key.extend_from_slice(name.as_str().as_bytes());
                key.push(b':');
            }
        }
        key.extend_from_slice(self.value.as_bytes());
        key
    }
}

impl std::fmt::Display for IdentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}`", self.kind, self.value)
    }
}

/// The identifiers carried by one event (raw before `normalise`, clean
/// after): the three built-in slots, and a team's kinds by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifiers {
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub visitor_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<KindName, String>,
}

impl Identifiers {
    /// Every present identifier as (kind, value), built-ins first.
    pub fn each(&self) -> impl Iterator<Item = (IdentKind, &str)> {
        let builtin = [
            (IdentKind::ExternalId, &self.external_id),
            (IdentKind::Email, &self.email),
            (IdentKind::VisitorId, &self.visitor_id),
        ]
        .into_iter()
        .filter_map(|(kind, v)| v.as_deref().map(|v| (kind, v)));
        let custom = self
            .other
            .iter()
            .map(|(name, v)| (IdentKind::Custom(name.clone()), v.as_str()));
        builtin.chain(custom)
    }

    /// The value of one kind, if present.
    pub fn get(&self, kind: &IdentKind) -> Option<&str> {
        match kind {
            IdentKind::ExternalId => self.external_id.as_deref(),
            IdentKind::Email => self.email.as_deref(),
            IdentKind::VisitorId => self.visitor_id.as_deref(),
            IdentKind::Custom(name) => self.other.get(name).map(String::as_str),
        }
    }

    /// Sets (or with `None` clears) one kind's value.
    pub fn set(&mut self, kind: IdentKind, value: Option<String>) {
        match kind {
            IdentKind::ExternalId => self.external_id = value,
            IdentKind::Email => self.email = value,
            IdentKind::VisitorId => self.visitor_id = value,
            IdentKind::Custom(name) => match value {
                Some(v) => {
                    self.other.insert(name, v);
                }
                None => {
                    self.other.remove(&name);
                }
            },
        }
    }

    /// The present identifiers as keys, strongest first by `kinds`.
    pub fn keys(&self, kinds: &KindSet) -> Vec<IdentKey> {
        let mut keys: Vec<IdentKey> = self
            .each()
            .map(|(kind, v)| IdentKey::new(kind, v))
            .collect();
        keys.sort_by_key(|k| kinds.rank(k.kind()));
        keys
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
    /// Values of a team's kinds, by kind (absent in records written before
    /// kinds existed, which therefore read unchanged).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub identifiers: BTreeMap<KindName, Vec<String>>,
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
            identifiers: BTreeMap::new(),
            traits: BTreeMap::new(),
            first_seen: at,
            last_seen: at,
            event_count: 0,
            merged_from: Vec::new(),
            merge_count: 0,
            created_at: Utc::now(),
        }
    }

    /// Every identifier of the profile as a key, built-ins first.
    pub fn keys(&self) -> Vec<IdentKey> {
        let builtin = IdentKind::BUILTIN.into_iter().flat_map(|kind| {
            self.list(&kind)
                .iter()
                .map(move |v| IdentKey::new(kind.clone(), v.clone()))
        });
        let custom = self.identifiers.iter().flat_map(|(name, values)| {
            values
                .iter()
                .map(move |v| IdentKey::new(IdentKind::Custom(name.clone()), v.clone()))
        });
        builtin.chain(custom).collect()
    }

    /// The values of `kind` the profile holds.
    pub fn list(&self, kind: &IdentKind) -> &[String] {
        match kind {
            IdentKind::ExternalId => &self.external_ids,
            IdentKind::Email => &self.emails,
            IdentKind::VisitorId => &self.visitor_ids,
            IdentKind::Custom(name) => self.identifiers.get(name).map_or(&[], Vec::as_slice),
        }
    }

    fn list_mut(&mut self, kind: &IdentKind) -> &mut Vec<String> {
        match kind {
            IdentKind::ExternalId => &mut self.external_ids,
            IdentKind::Email => &mut self.emails,
            IdentKind::VisitorId => &mut self.visitor_ids,
            IdentKind::Custom(name) => self.identifiers.entry(name.clone()).or_default(),
        }
    }

    /// True when the profile holds `key`.
    pub fn holds(&self, key: &IdentKey) -> bool {
        self.list(key.kind()).iter().any(|v| v == key.value())
    }

    /// Removes an identifier; true when it was there.
    pub fn remove_key(&mut self, key: &IdentKey) -> bool {
        let list = self.list_mut(key.kind());
        let before = list.len();
        list.retain(|v| v != key.value());
        let removed = list.len() != before;
        if let IdentKind::Custom(name) = key.kind() {
            if self.identifiers.get(name).is_some_and(Vec::is_empty) {
                self.identifiers.remove(name);
            }
        }
        removed
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

    /// The rank of the strongest limit-1 kind ("one per person", such as
    /// `external_id`) the profile holds; `usize::MAX` when none.
    pub fn strongest_unique(&self, kinds: &KindSet) -> usize {
        kinds
            .all()
            .iter()
            .position(|s| s.limit == 1 && !self.list(&s.name).is_empty())
            .map_or(usize::MAX, |i| i + 1)
    }

    /// Survivor order: the profile holding the strongest one-per-person
    /// kind wins (with the built-ins alone: the one with an external id),
    /// else the oldest.
    pub fn survives_over(&self, other: &Profile, kinds: &KindSet) -> bool {
        let mine = (self.strongest_unique(kinds), self.created_at, self.id);
        let theirs = (other.strongest_unique(kinds), other.created_at, other.id);
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

/// Why an identifier was not used. Stored and shown as its code string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// Two values of a one-per-person kind (limit 1, such as `external_id`)
    /// would meet on one profile: code `<kind>_conflict`, so
    /// `external_id_conflict` as before.
    Conflict(IdentKind),
    /// A kind with a larger limit, or the merge count, would be exceeded.
    LimitExceeded,
    /// A split said these two must stay apart (a never-merge rule).
    NeverMerge,
    /// The mapping names a kind that is not defined.
    UnknownKind,
    /// The kind is disabled: its new values are not used.
    KindDisabled,
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
    const FIXED: [(RefusalReason, &'static str); 10] = [
        (RefusalReason::LimitExceeded, "limit_exceeded"),
        (RefusalReason::NeverMerge, "never_merge"),
        (RefusalReason::UnknownKind, "unknown_kind"),
        (RefusalReason::KindDisabled, "kind_disabled"),
        (RefusalReason::BlockedValue, "blocked_value"),
        (RefusalReason::InvalidEmail, "invalid_email"),
        (RefusalReason::TooLong, "too_long"),
        (RefusalReason::ControlCharacter, "control_character"),
        (RefusalReason::InvisibleCharacter, "invisible_character"),
        (RefusalReason::UnusualSpace, "unusual_space"),
    ];

    /// The code in warnings, the error log and the API.
    pub fn code(&self) -> std::borrow::Cow<'static, str> {
        if let RefusalReason::Conflict(kind) = self {
            return format!("{}_conflict", kind.as_str()).into();
        }
        let fixed = Self::FIXED.iter().find(|(r, _)| r == self);
        fixed.map_or("unknown".into(), |(_, code)| (*code).into())
    }

    /// Reads a code back (`None` for one this version does not know).
    pub fn parse(code: &str) -> Option<Self> {
        if let Some((_, reason)) = Self::FIXED
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(r, c)| (c, r))
        {
            return Some(reason.clone());
        }
        let kind = code.strip_suffix("_conflict")?;
        IdentKind::parse(kind).ok().map(RefusalReason::Conflict)
    }

    /// True for a conflict between two people (a limit-1 kind, or a
    /// never-merge rule): the refusal names the profile it kept apart.
    pub fn keeps_people_apart(&self) -> bool {
        matches!(self, RefusalReason::Conflict(_) | RefusalReason::NeverMerge)
    }
}

impl Serialize for RefusalReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.code())
    }
}

impl<'de> Deserialize<'de> for RefusalReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        RefusalReason::parse(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown refusal reason `{code}`")))
    }
}

/// One identifier the resolver refused, with why. The value is kept (support
/// needs it to explain a split profile) but bounded in length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub kind: IdentKind,
    pub value: String,
    pub reason: RefusalReason,
    /// For a conflict: the profile the refused identifier belongs to (or,
    /// for a new value of a one-per-person kind, the profile whose value it
    /// clashed with). Its history shows the refusal too, so support sees on both
    /// sides why two profiles stayed apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<ProfileId>,
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
            owner: None,
        }
    }

    /// The same refusal, naming the profile it kept the event out of.
    pub fn owned_by(mut self, owner: Option<ProfileId>) -> Self {
        self.owner = owner;
        self
    }

    /// The human warning stored on the event.
    pub fn warning(&self) -> String {
        format!("{} dropped: {}", self.kind.as_str(), self.reason.code())
    }

    /// The warning stored on the event and in the error log, with the value
    /// (support needs it to explain a split profile).
    pub fn message(&self) -> String {
        format!(
            "{} `{}` dropped: {}",
            self.kind.as_str(),
            self.value,
            self.reason.code()
        )
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
                Some(r) => format!("refused: {}", r.reason.code()),
                None => "refused: no_identifier".into(),
            },
        }
    }
}

/// One line of a profile's history. Key: profile id ‖ audit id, so the
/// history of a profile is a prefix scan in time order.
///
/// Stored (and shown by the API) as `{id, at, profile_id, kind, event_id,
/// detail}`, the shape the untyped entry had, so old data dirs read and the
/// history JSON is unchanged; `change` is `kind` and `detail` together.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// UUID v7: sorts by time.
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub profile_id: ProfileId,
    pub event_id: Option<EventId>,
    pub change: AuditChange,
}

/// What an audit line records: one variant per `kind`, each with its
/// typed `detail`.
#[derive(Clone, Debug, PartialEq)]
pub enum AuditChange {
    Create(Created),
    Attach(Attached),
    Merge(Merged),
    Refusal(Refused),
    ManualMerge(ManualMerged),
    Erasure(Erased),
    /// Support staff undid a merge (see `identity::split`).
    Split(SplitLine),
    /// A line whose detail an erasure removed (`{"redacted": true}`); the
    /// kind is kept so the history still says what happened.
    Redacted(AuditKind),
    /// A line this version cannot read as typed (a kind or detail written
    /// by another version). Kept as stored rather than failing the whole
    /// history page, and written back unchanged.
    Unknown {
        kind: String,
        detail: Value,
    },
}

/// The `kind` of an audit line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Create,
    Attach,
    Merge,
    Refusal,
    ManualMerge,
    Erasure,
    Split,
}

impl AuditKind {
    pub const ALL: [AuditKind; 7] = [
        AuditKind::Create,
        AuditKind::Attach,
        AuditKind::Merge,
        AuditKind::Refusal,
        AuditKind::ManualMerge,
        AuditKind::Erasure,
        AuditKind::Split,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Create => "create",
            AuditKind::Attach => "attach",
            AuditKind::Merge => "merge",
            AuditKind::Refusal => "refusal",
            AuditKind::ManualMerge => "manual_merge",
            AuditKind::Erasure => "erasure",
            AuditKind::Split => "split",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// `create`: a new profile from an event's identifiers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    pub identifiers: Vec<IdentKey>,
    pub source_id: SourceId,
}

/// `attach`: an event added identifiers to an existing profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    pub added: Vec<IdentKey>,
    pub source_id: SourceId,
}

/// `merge`: an event joined profiles; `absorbed` went into this one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merged {
    pub absorbed: Vec<ProfileId>,
    pub added: Vec<IdentKey>,
    pub source_id: SourceId,
    /// For the survivor and each absorbed profile, the strongest of the
    /// event's identifiers it held: the identifiers that joined them. A
    /// split makes its never-merge pair from these. Absent on lines
    /// written before they were kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<MergeLink>,
}

/// One profile of a merge and the event's identifier that it held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeLink {
    pub profile_id: ProfileId,
    pub key: IdentKey,
}

/// `refusal`: identifiers of one event that were not used, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub refusals: Vec<Refusal>,
    pub source_id: SourceId,
    /// The profile the event joined (`None`: none). The line is filed under
    /// that profile and under each refusal's `owner`, so each side can
    /// link to the other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined: Option<ProfileId>,
}

/// `manual_merge`: support staff merged `from` into this profile
/// (`requested_*` are the ids asked for, possibly absorbed ones).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualMerged {
    pub from: ProfileId,
    pub requested_from: ProfileId,
    pub requested_into: ProfileId,
}

/// `split`: support staff undid the merge `merge_id`; filed under each
/// profile the split left. The pairs became never-merge rules (`rules`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitLine {
    pub merge_id: Uuid,
    /// Who split (the dashboard user, or `api`) and why.
    pub by: String,
    #[serde(default)]
    pub reason: String,
    /// The identifier pairs kept apart from now on, with their rule ids.
    pub pairs: Vec<SplitPair>,
    /// Every profile the split left, this one included.
    pub profiles: Vec<ProfileId>,
}

/// One never-merge pair a split made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitPair {
    pub rule_id: Uuid,
    pub a: IdentKey,
    pub b: IdentKey,
}

/// `erasure`: counts only, never the erased values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    pub events: u64,
    pub identifiers: usize,
    pub merged_profiles: usize,
}

impl AuditChange {
    /// The stored `kind` string.
    pub fn kind(&self) -> &str {
        match self {
            AuditChange::Create(_) => AuditKind::Create.as_str(),
            AuditChange::Attach(_) => AuditKind::Attach.as_str(),
            AuditChange::Merge(_) => AuditKind::Merge.as_str(),
            AuditChange::Refusal(_) => AuditKind::Refusal.as_str(),
            AuditChange::ManualMerge(_) => AuditKind::ManualMerge.as_str(),
            AuditChange::Erasure(_) => AuditKind::Erasure.as_str(),
            AuditChange::Split(_) => AuditKind::Split.as_str(),
            AuditChange::Redacted(kind) => kind.as_str(),
            AuditChange::Unknown { kind, .. } => kind,
        }
    }

    /// The source of the event behind the line, when there was one.
    pub fn source_id(&self) -> Option<SourceId> {
        match self {
            AuditChange::Create(d) => Some(d.source_id),
            AuditChange::Attach(d) => Some(d.source_id),
            AuditChange::Merge(d) => Some(d.source_id),
            AuditChange::Refusal(d) => Some(d.source_id),
            AuditChange::Unknown { detail, .. } => detail
                .get("source_id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok()),
            AuditChange::ManualMerge(_)
            | AuditChange::Erasure(_)
            | AuditChange::Split(_)
            | AuditChange::Redacted(_) => None,
        }
    }

    fn from_stored(kind: String, detail: Value) -> Self {
        fn typed<T: serde::de::DeserializeOwned>(
            detail: &Value,
            wrap: fn(T) -> AuditChange,
        ) -> Option<AuditChange> {
            T::deserialize(detail).ok().map(wrap)
        }
        let Some(known) = AuditKind::parse(&kind) else {
            return AuditChange::Unknown { kind, detail };
        };
        if detail == redacted_detail() {
            return AuditChange::Redacted(known);
        }
        let change = match known {
            AuditKind::Create => typed(&detail, AuditChange::Create),
            AuditKind::Attach => typed(&detail, AuditChange::Attach),
            AuditKind::Merge => typed(&detail, AuditChange::Merge),
            AuditKind::Refusal => typed(&detail, AuditChange::Refusal),
            AuditKind::ManualMerge => typed(&detail, AuditChange::ManualMerge),
            AuditKind::Erasure => typed(&detail, AuditChange::Erasure),
            AuditKind::Split => typed(&detail, AuditChange::Split),
        };
        change.unwrap_or(AuditChange::Unknown { kind, detail })
    }
}

/// What an erasure leaves of a line's detail.
fn redacted_detail() -> Value {
    let mut map = Map::new();
    map.insert("redacted".into(), Value::Bool(true));
    Value::Object(map)
}

/// The stored form, field for field.
#[derive(Deserialize)]
struct StoredAudit {
    id: Uuid,
    at: DateTime<Utc>,
    profile_id: ProfileId,
    kind: String,
    event_id: Option<EventId>,
    detail: Value,
}

impl Serialize for AuditEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("AuditEntry", 6)?;
        out.serialize_field("id", &self.id)?;
        out.serialize_field("at", &self.at)?;
        out.serialize_field("profile_id", &self.profile_id)?;
        out.serialize_field("kind", self.change.kind())?;
        out.serialize_field("event_id", &self.event_id)?;
        match &self.change {
            AuditChange::Create(d) => out.serialize_field("detail", d)?,
            AuditChange::Attach(d) => out.serialize_field("detail", d)?,
            AuditChange::Merge(d) => out.serialize_field("detail", d)?,
            AuditChange::Refusal(d) => out.serialize_field("detail", d)?,
            AuditChange::ManualMerge(d) => out.serialize_field("detail", d)?,
            AuditChange::Erasure(d) => out.serialize_field("detail", d)?,
            AuditChange::Split(d) => out.serialize_field("detail", d)?,
            AuditChange::Redacted(_) => out.serialize_field("detail", &redacted_detail())?,
            AuditChange::Unknown { detail, .. } => out.serialize_field("detail", detail)?,
        }
        out.end()
    }
}

impl<'de> Deserialize<'de> for AuditEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = StoredAudit::deserialize(d)?;
        Ok(Self {
            id: stored.id,
            at: stored.at,
            profile_id: stored.profile_id,
            event_id: stored.event_id,
            change: AuditChange::from_stored(stored.kind, stored.detail),
        })
    }
}

impl AuditEntry {
    pub fn new(profile_id: ProfileId, event_id: Option<EventId>, change: AuditChange) -> Self {
        Self {
            id: Uuid::now_v7(),
            at: Utc::now(),
            profile_id,
            event_id,
            change,
        }
    }

    /// The stored `kind` string.
    pub fn kind(&self) -> &str {
        self.change.kind()
    }

    /// The erasure policy for history: every line loses its detail except
    /// the erasure line itself (which holds counts, never values). True
    /// when the line must be written back.
    pub fn redact(&mut self) -> bool {
        let kind = match &mut self.change {
            AuditChange::Erasure(_) | AuditChange::Redacted(AuditKind::Erasure) => return false,
            AuditChange::Unknown { kind, .. } if kind == AuditKind::Erasure.as_str() => {
                return false
            }
            AuditChange::Unknown { detail, .. } => {
                *detail = redacted_detail();
                return true;
            }
            AuditChange::Create(_) => AuditKind::Create,
            AuditChange::Attach(_) => AuditKind::Attach,
            AuditChange::Merge(_) => AuditKind::Merge,
            AuditChange::Refusal(_) => AuditKind::Refusal,
            AuditChange::ManualMerge(_) => AuditKind::ManualMerge,
            AuditChange::Split(_) => AuditKind::Split,
            AuditChange::Redacted(kind) => *kind,
        };
        self.change = AuditChange::Redacted(kind);
        true
    }

    /// True when two lines are the same refusal (same reasons, identifiers
    /// and source): a history page folds such runs into one line.
    pub fn same_refusal(&self, older: &AuditEntry) -> bool {
        let refusal = AuditKind::Refusal.as_str();
        self.kind() == refusal && older.kind() == refusal && self.change == older.change
    }

    /// The `audit` tree key.
    pub fn key_bytes(&self) -> [u8; 32] {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&self.profile_id.to_bytes());
        key[16..].copy_from_slice(self.id.as_bytes());
        key
    }
}

#[cfg(test)]
mod audit_tests {
    use super::*;
    use serde_json::json;

    /// Lines as the untyped entry stored them: every kind, a redacted one
    /// and one this version cannot type.
    fn stored() -> Vec<Value> {
        let (p, e, s) = (ProfileId::new(), EventId::new(), SourceId::new());
        let line = |kind: &str, event: Option<EventId>, detail: Value| {
            json!({"id": Uuid::now_v7(), "at": Utc::now(), "profile_id": p,
                   "kind": kind, "event_id": event, "detail": detail})
        };
        let key = json!([{"kind": "email", "value": "ada@example.com"}]);
        vec![
            line(
                "create",
                Some(e),
                json!({"identifiers": key, "source_id": s}),
            ),
            line("attach", Some(e), json!({"added": key, "source_id": s})),
            line(
                "merge",
                Some(e),
                json!({"absorbed": [ProfileId::new()], "added": key, "source_id": s}),
            ),
            line(
                "refusal",
                Some(e),
                json!({"refusals": [{"kind": "email", "value": "x", "reason": "invalid_email"}], "source_id": s}),
            ),
            line(
                "manual_merge",
                None,
                json!({"from": p, "requested_from": p, "requested_into": p}),
            ),
            line(
                "erasure",
                None,
                json!({"identifiers": 2, "merged_profiles": 0, "events": 5}),
            ),
            line("merge", Some(e), json!({"redacted": true})),
            line("something_new", None, json!({"any": ["thing"]})),
        ]
    }

    #[test]
    fn stored_lines_read_typed_and_write_back_identical() {
        let kinds: Vec<_> = stored()
            .into_iter()
            .map(|old| {
                let entry: AuditEntry = serde_json::from_value(old.clone()).unwrap();
                assert_eq!(serde_json::to_value(&entry).unwrap(), old);
                entry.change
            })
            .collect();
        assert!(matches!(kinds[0], AuditChange::Create(_)));
        assert!(matches!(kinds[3], AuditChange::Refusal(_)));
        assert!(matches!(kinds[5], AuditChange::Erasure(_)));
        assert_eq!(kinds[6], AuditChange::Redacted(AuditKind::Merge));
        assert!(matches!(kinds[7], AuditChange::Unknown { .. }));
    }

    #[test]
    fn redaction_keeps_only_the_erasure_line() {
        for old in stored() {
            let mut entry: AuditEntry = serde_json::from_value(old.clone()).unwrap();
            let rewritten = entry.redact();
            let now = serde_json::to_value(&entry).unwrap();
            assert_eq!(now["kind"], old["kind"]);
            if old["kind"] == "erasure" {
                assert!(!rewritten);
                assert_eq!(now, old);
            } else {
                assert!(rewritten);
                assert_eq!(now["detail"], json!({"redacted": true}));
            }
        }
    }
}
