//! "Never merge" rules: identifier pairs a split took apart.
//!
//! When support staff split a wrong merge, the pair of identifiers the
//! merging event brought together is remembered, so later events do not
//! merge the two again. A rule is about profiles, not events: no event may
//! bring a profile holding one side together with a profile holding the
//! other (see `resolve`). The rules are few (one per split), so the whole
//! set is held in memory and indexed by identifier.

use super::types::IdentKey;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// One pair that must stay on two profiles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeverMergeRule {
    /// UUID v7: rules list in the order they were made.
    pub id: Uuid,
    pub a: IdentKey,
    pub b: IdentKey,
    pub created_at: DateTime<Utc>,
    /// Who made it (the dashboard user or `api`).
    pub by: String,
    /// Why, as given with the split.
    #[serde(default)]
    pub reason: String,
    /// The `merge` audit line whose split made it, if a split did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_of: Option<Uuid>,
}

/// Every rule, indexed both ways.
#[derive(Clone, Debug, Default)]
pub struct NeverMerge {
    rules: Vec<NeverMergeRule>,
    partners: HashMap<IdentKey, Vec<IdentKey>>,
}

impl NeverMerge {
    pub fn new(rules: Vec<NeverMergeRule>) -> Self {
        let mut partners: HashMap<IdentKey, Vec<IdentKey>> = HashMap::new();
        for rule in &rules {
            partners
                .entry(rule.a.clone())
                .or_default()
                .push(rule.b.clone());
            partners
                .entry(rule.b.clone())
                .or_default()
                .push(rule.a.clone());
        }
        Self { rules, partners }
    }

    pub fn rules(&self) -> &[NeverMergeRule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The identifiers `key` must never share a profile with.
    pub fn partners(&self, key: &IdentKey) -> &[IdentKey] {
        self.partners.get(key).map_or(&[], Vec::as_slice)
    }

    /// The same rules plus `more`.
    pub fn with(&self, more: impl IntoIterator<Item = NeverMergeRule>) -> Self {
        let mut rules = self.rules.clone();
        rules.extend(more);
        Self::new(rules)
    }
}
