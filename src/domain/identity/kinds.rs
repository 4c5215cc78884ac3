//! Identifier kinds: the three built-ins and the ones a team defines.
//!
//! A kind has a name, a place in one priority order (a total order: rank 1
//! is the strongest), a per-profile limit, a normalisation and values it
//! never accepts. `external_id` is simply the kind with rank 1 and limit 1;
//! `email` and `visitor_id` keep their own rules (the email shape check,
//! limits 5 and 100). A team's kinds sit anywhere below `external_id`, so a
//! shop's user id and Stripe's customer id are two kinds and never fight
//! over one slot.
//!
//! The set is small (a handful of kinds) and read on every resolution, so
//! it is a plain ordered `Vec`: a linear scan beats a map at this size.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// The longest kind name accepted.
pub const MAX_KIND_NAME: usize = 48;
/// At most this many kinds (built-ins included).
pub const MAX_KINDS: usize = 32;
/// The largest per-profile limit a kind may have.
pub const MAX_KIND_LIMIT: u32 = 100;
/// At most this many blocked values per kind.
pub const MAX_BLOCKED_VALUES: usize = 100;

/// A team-defined kind's name: lowercase ASCII letters, digits and `_`,
/// starting with a letter, and not a built-in's name. Cheap to clone: the
/// resolver copies kinds into every key it builds.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KindName(Arc<str>);

impl KindName {
    /// Checks a name a team chose.
    pub fn parse(name: &str) -> Result<Self, KindError> {
        let valid_chars = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let starts_with_letter = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        if name.is_empty() || name.len() > MAX_KIND_NAME || !valid_chars || !starts_with_letter {
            return Err(KindError::BadName(name.chars().take(64).collect()));
        }
        if IdentKind::builtin(name).is_some() {
            return Err(KindError::BuiltinName(name.to_owned()));
        }
        Ok(Self(Arc::from(name)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KindName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// An identifier kind. The built-ins are variants so their own rules (the
/// email check, the legacy index prefixes) are matched, not looked up.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentKind {
    ExternalId,
    Email,
    VisitorId,
    Custom(KindName),
}

impl IdentKind {
    pub const BUILTIN: [IdentKind; 3] = [
        IdentKind::ExternalId,
        IdentKind::Email,
        IdentKind::VisitorId,
    ];

    /// The name used in warnings, the API and mappings.
    pub fn as_str(&self) -> &str {
        match self {
            IdentKind::ExternalId => "external_id",
            IdentKind::Email => "email",
            IdentKind::VisitorId => "visitor_id",
            IdentKind::Custom(name) => name.as_str(),
        }
    }

    fn builtin(name: &str) -> Option<IdentKind> {
        IdentKind::BUILTIN.into_iter().find(|k| k.as_str() == name)
    }

    /// A kind by name: a built-in, or a valid custom name (which may not be
    /// defined; [`KindSet::spec`] says).
    pub fn parse(name: &str) -> Result<IdentKind, KindError> {
        match IdentKind::builtin(name) {
            Some(kind) => Ok(kind),
            None => KindName::parse(name).map(IdentKind::Custom),
        }
    }

    /// Reads a stored kind, also in the spelling the audit lines used before
    /// kinds had names of their own (`external`, `visitor`).
    fn from_stored(name: &str) -> Result<IdentKind, KindError> {
        match name {
            "external" => Ok(IdentKind::ExternalId),
            "visitor" => Ok(IdentKind::VisitorId),
            other => IdentKind::parse(other),
        }
    }

    pub fn is_builtin(&self) -> bool {
        !matches!(self, IdentKind::Custom(_))
    }
}

impl fmt::Display for IdentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for IdentKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for IdentKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        IdentKind::from_stored(&name).map_err(serde::de::Error::custom)
    }
}

impl Serialize for KindName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for KindName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        KindName::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// How a kind's values are cleaned before lookup (after the checks every
/// kind gets: length, invisible and control characters, odd spaces,
/// placeholders).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalise {
    /// ASCII whitespace trimmed at both ends.
    Trim,
    /// Trimmed, then ASCII letters lowercased (never Unicode case folding:
    /// see `normalise`).
    Lowercase,
    /// Exactly as sent: ` cus_1` and `cus_1` are two identifiers.
    None,
    /// The built-in email rule: trimmed, ASCII-lowercased, one `@`.
    Email,
}

/// One kind's rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindSpec {
    pub name: IdentKind,
    /// Most values of this kind one profile may hold; an event that would
    /// put more on one profile drops its lowest-priority identifier that
    /// brings them (limit 1: a conflict between two people).
    pub limit: u32,
    pub normalise: Normalise,
    /// Values never accepted for this kind (compared ignoring case), on
    /// top of the placeholders every kind refuses.
    #[serde(default)]
    pub blocked_values: Vec<String>,
    /// A disabled kind is kept (profiles keep its values, lookups find
    /// them) but new events' values of it are not used.
    #[serde(default = "enabled")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

fn enabled() -> bool {
    true
}

impl KindSpec {
    fn builtin(name: IdentKind) -> Self {
        let (limit, normalise) = match name {
            IdentKind::ExternalId => (1, Normalise::Trim),
            IdentKind::Email => (5, Normalise::Email),
            _ => (100, Normalise::Trim),
        };
        Self {
            name,
            limit,
            normalise,
            blocked_values: Vec::new(),
            enabled: true,
            created_at: None,
        }
    }
}

/// Why a kind or a change to the set was refused; each says what to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KindError {
    #[error("kind name `{0}` is not valid: use lowercase letters, digits and `_`, starting with a letter, at most 48 characters")]
    BadName(String),
    #[error("`{0}` is a built-in identifier kind; choose another name")]
    BuiltinName(String),
    #[error("identifier kind `{0}` already exists")]
    Exists(String),
    #[error("no identifier kind is named `{0}`")]
    Unknown(String),
    #[error("`{0}` is a built-in kind: its rules cannot be changed")]
    Builtin(String),
    #[error("priority {0} is not available: 1 is external_id's; use 2 to {1}")]
    BadPriority(u32, usize),
    #[error("limit must be between 1 and 100, got {0}")]
    BadLimit(u32),
    #[error("`email` normalisation is the built-in email's; use trim, lowercase or none")]
    EmailNormalise,
    #[error("at most 32 identifier kinds")]
    TooMany,
    #[error("at most 100 blocked values per kind")]
    TooManyBlocked,
}

/// Every kind, strongest first. Rank (the API's `priority`) is the 1-based
/// position; `external_id` is always first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<KindSpec>", into = "Vec<KindSpec>")]
pub struct KindSet {
    order: Vec<KindSpec>,
}

impl From<Vec<KindSpec>> for KindSet {
    /// A stored set, repaired so the invariants hold whatever was written:
    /// every built-in present with its own rules, `external_id` first, no
    /// name twice.
    fn from(stored: Vec<KindSpec>) -> Self {
        let mut order: Vec<KindSpec> = Vec::with_capacity(stored.len());
        for spec in stored {
            if order.iter().any(|s| s.name == spec.name) || spec.name == IdentKind::ExternalId {
                continue;
            }
            order.push(match spec.name {
                IdentKind::Custom(_) => spec,
                builtin => KindSpec::builtin(builtin),
            });
        }
        for builtin in [IdentKind::Email, IdentKind::VisitorId] {
            if !order.iter().any(|s| s.name == builtin) {
                order.push(KindSpec::builtin(builtin));
            }
        }
        order.insert(0, KindSpec::builtin(IdentKind::ExternalId));
        Self { order }
    }
}

impl From<KindSet> for Vec<KindSpec> {
    fn from(set: KindSet) -> Self {
        set.order
    }
}

impl Default for KindSet {
    /// The built-ins alone: what every data dir written before kinds had.
    fn default() -> Self {
        Self {
            order: IdentKind::BUILTIN
                .into_iter()
                .map(KindSpec::builtin)
                .collect(),
        }
    }
}

impl KindSet {
    /// Every kind, strongest first.
    pub fn all(&self) -> &[KindSpec] {
        &self.order
    }

    pub fn spec(&self, kind: &IdentKind) -> Option<&KindSpec> {
        self.order.iter().find(|s| &s.name == kind)
    }

    /// The kind's 1-based priority; an unknown kind ranks after every known
    /// one (its values are refused before ranking matters).
    pub fn rank(&self, kind: &IdentKind) -> usize {
        self.order
            .iter()
            .position(|s| &s.name == kind)
            .map_or(usize::MAX, |i| i + 1)
    }

    /// The kind's per-profile limit (0 for an unknown kind).
    pub fn limit(&self, kind: &IdentKind) -> usize {
        self.spec(kind).map_or(0, |s| s.limit as usize)
    }

    /// Adds a team's kind at `priority` (default: just above `visitor_id`,
    /// since a team's own ids are stronger than an anonymous cookie).
    pub fn add(&mut self, mut spec: KindSpec, priority: Option<u32>) -> Result<(), KindError> {
        let IdentKind::Custom(_) = &spec.name else {
            return Err(KindError::BuiltinName(spec.name.as_str().to_owned()));
        };
        if self.spec(&spec.name).is_some() {
            return Err(KindError::Exists(spec.name.as_str().to_owned()));
        }
        if self.order.len() >= MAX_KINDS {
            return Err(KindError::TooMany);
        }
        check_rules(&spec)?;
        let at = match priority {
            Some(p) => self.position_for(p, self.order.len() + 1)?,
            None => self.rank(&IdentKind::VisitorId) - 1,
        };
        spec.created_at.get_or_insert_with(Utc::now);
        self.order.insert(at, spec);
        Ok(())
    }

    /// Changes a team's kind; a built-in cannot be changed.
    pub fn update(&mut self, kind: &IdentKind, change: KindChange) -> Result<&KindSpec, KindError> {
        let at = self
            .order
            .iter()
            .position(|s| &s.name == kind)
            .ok_or_else(|| KindError::Unknown(kind.as_str().to_owned()))?;
        if kind.is_builtin() {
            return Err(KindError::Builtin(kind.as_str().to_owned()));
        }
        let mut spec = self.order[at].clone();
        if let Some(limit) = change.limit {
            spec.limit = limit;
        }
        if let Some(normalise) = change.normalise {
            spec.normalise = normalise;
        }
        if let Some(values) = change.blocked_values {
            spec.blocked_values = values;
        }
        if let Some(enabled) = change.enabled {
            spec.enabled = enabled;
        }
        check_rules(&spec)?;
        let mut order = self.order.clone();
        order.remove(at);
        let to = match change.priority {
            Some(p) => {
                let rest = KindSet { order };
                let to = rest.position_for(p, rest.order.len() + 1)?;
                order = rest.order;
                to
            }
            None => at,
        };
        order.insert(to, spec);
        self.order = order;
        Ok(&self.order[to])
    }

    /// Removes a team's kind (the caller checks it is not in use).
    pub fn remove(&mut self, kind: &IdentKind) -> Result<KindSpec, KindError> {
        if kind.is_builtin() {
            return Err(KindError::Builtin(kind.as_str().to_owned()));
        }
        let at = self
            .order
            .iter()
            .position(|s| &s.name == kind)
            .ok_or_else(|| KindError::Unknown(kind.as_str().to_owned()))?;
        Ok(self.order.remove(at))
    }

    /// The index a kind asked to have `priority` goes to; rank 1 is
    /// `external_id`'s for good.
    fn position_for(&self, priority: u32, lowest: usize) -> Result<usize, KindError> {
        let p = priority as usize;
        if p < 2 || p > lowest {
            return Err(KindError::BadPriority(priority, lowest));
        }
        Ok(p - 1)
    }
}

/// A PATCH of a kind: only what is given changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindChange {
    pub priority: Option<u32>,
    pub limit: Option<u32>,
    pub normalise: Option<Normalise>,
    pub blocked_values: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

fn check_rules(spec: &KindSpec) -> Result<(), KindError> {
    if spec.limit == 0 || spec.limit > MAX_KIND_LIMIT {
        return Err(KindError::BadLimit(spec.limit));
    }
    if spec.normalise == Normalise::Email {
        return Err(KindError::EmailNormalise);
    }
    if spec.blocked_values.len() > MAX_BLOCKED_VALUES {
        return Err(KindError::TooManyBlocked);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(name: &str, limit: u32) -> KindSpec {
        KindSpec {
            name: IdentKind::parse(name).unwrap(),
            limit,
            normalise: Normalise::Trim,
            blocked_values: vec![],
            enabled: true,
            created_at: None,
        }
    }

    fn names(set: &KindSet) -> Vec<&str> {
        set.all().iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn names_are_validated_and_builtins_are_taken() {
        assert!(KindName::parse("stripe_customer_id").is_ok());
        assert!(KindName::parse("phone2").is_ok());
        for bad in ["", "Phone", "2fa", "a-b", "a b", "é", &"x".repeat(49)] {
            assert!(
                matches!(KindName::parse(bad), Err(KindError::BadName(_))),
                "{bad}"
            );
        }
        assert_eq!(
            KindName::parse("email"),
            Err(KindError::BuiltinName("email".into()))
        );
    }

    #[test]
    fn a_new_kind_goes_above_visitor_id_by_default_or_where_asked() {
        let mut set = KindSet::default();
        set.add(custom("phone", 1), None).unwrap();
        assert_eq!(names(&set), ["external_id", "email", "phone", "visitor_id"]);
        set.add(custom("stripe_customer_id", 1), Some(2)).unwrap();
        assert_eq!(
            names(&set),
            [
                "external_id",
                "stripe_customer_id",
                "email",
                "phone",
                "visitor_id"
            ]
        );
        assert_eq!(set.rank(&IdentKind::Email), 3);
        assert_eq!(
            set.add(custom("x", 1), Some(1)),
            Err(KindError::BadPriority(1, 6))
        );
        assert_eq!(
            set.add(custom("phone", 1), None),
            Err(KindError::Exists("phone".into()))
        );
    }

    #[test]
    fn a_kind_moves_and_changes_but_a_builtin_does_not() {
        let mut set = KindSet::default();
        set.add(custom("phone", 1), None).unwrap();
        let phone = IdentKind::parse("phone").unwrap();
        let change = KindChange {
            priority: Some(4),
            limit: Some(3),
            ..KindChange::default()
        };
        assert_eq!(set.update(&phone, change).unwrap().limit, 3);
        assert_eq!(names(&set), ["external_id", "email", "visitor_id", "phone"]);
        assert!(matches!(
            set.update(&IdentKind::Email, KindChange::default()),
            Err(KindError::Builtin(_))
        ));
        assert!(matches!(
            set.update(
                &phone,
                KindChange {
                    limit: Some(0),
                    ..KindChange::default()
                }
            ),
            Err(KindError::BadLimit(0))
        ));
        assert_eq!(set.rank(&phone), 4, "a refused change changes nothing");
    }

    #[test]
    fn stored_kinds_read_in_the_old_audit_spelling_too() {
        let old: IdentKind = serde_json::from_str("\"external\"").unwrap();
        assert_eq!(old, IdentKind::ExternalId);
        let new: IdentKind = serde_json::from_str("\"external_id\"").unwrap();
        assert_eq!(new, IdentKind::ExternalId);
        assert_eq!(serde_json::to_string(&new).unwrap(), "\"external_id\"");
    }
}
