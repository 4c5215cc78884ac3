//! Identifier kinds of the team's own: list, define, change, delete.
//!
//! The kinds live in the store (`StateStore::identity_config`, written
//! whole by `put_identity_kinds`). A change is read-modify-write of the
//! whole set, so writers take [`super::Handles::kinds_writer`]: two concurrent
//! creates both land instead of the second overwriting the first. The lock
//! is a plain mutex held only over synchronous store calls, never across
//! an `.await`.
//!
//! A kind "in use" (some source's current mapping names it, or a profile
//! holds a value of it) cannot be deleted, since deleting would strand
//! those values; it can be disabled instead.

use super::{ServiceError, ServiceResult, Services};
use crate::domain::identity::{
    IdentKind, KindChange, KindError, KindName, KindSet, KindSpec, Normalise,
};
use crate::domain::mapping::presets::PresetKind;
use crate::store::StateStore;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Where a team defines its kinds (said in refusals that need one).
pub const KINDS_URL: &str = "/api/identity/kinds";

/// A kind to define: `{"name", "priority", "limit", "normalise",
/// "blocked_values"}`; absent: priority just above `visitor_id`, limit 1,
/// `trim`, nothing blocked.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindInput {
    pub name: String,
    pub priority: Option<u32>,
    pub limit: Option<u32>,
    /// `trim`, `lowercase` or `none`, read here so a wrong one is refused
    /// as `invalid_kind` with what to write.
    pub normalise: Option<String>,
    pub blocked_values: Option<Vec<String>>,
}

/// A change to a kind: only what is given changes.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindPatch {
    pub priority: Option<u32>,
    pub limit: Option<u32>,
    pub normalise: Option<String>,
    pub blocked_values: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// A kind as the API and the dashboard show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KindView {
    pub name: IdentKind,
    /// 1 is the strongest; a total order (`external_id` is 1).
    pub priority: usize,
    pub limit: u32,
    pub normalise: Normalise,
    pub blocked_values: Vec<String>,
    pub enabled: bool,
    pub builtin: bool,
    pub created_at: Option<DateTime<Utc>>,
    /// A current mapping names it or a profile holds a value of it (always
    /// true of the built-ins, which cannot be deleted anyway).
    pub in_use: bool,
}

/// `{"kinds": [...]}`, strongest first.
#[derive(Clone, Debug, Serialize)]
pub struct KindList {
    pub kinds: Vec<KindView>,
}

impl Services {
    /// Every kind, strongest first.
    pub async fn identity_kinds(&self) -> ServiceResult<KindList> {
        let config = self.store.identity_config();
        let mapped = self.kinds_in_mappings()?;
        let kinds = config
            .kinds
            .all()
            .iter()
            .map(|spec| self.kind_view(&config.kinds, spec, &mapped))
            .collect::<ServiceResult<_>>()?;
        Ok(KindList { kinds })
    }

    /// Defines a team's kind (201 on the API).
    pub async fn create_identity_kind(&self, input: KindInput) -> ServiceResult<KindView> {
        let name = KindName::parse(input.name.trim()).map_err(kind_refused)?;
        let spec = KindSpec {
            name: IdentKind::Custom(name),
            limit: input.limit.unwrap_or(1),
            normalise: parse_normalise(input.normalise.as_deref())?.unwrap_or(Normalise::Trim),
            blocked_values: clean_blocked(input.blocked_values.unwrap_or_default()),
            enabled: true,
            created_at: None,
        };
        let kind = spec.name.clone();
        self.change_kinds(|kinds| kinds.add(spec, input.priority))?;
        self.identity_kind(&kind)
    }

    /// Changes a team's kind; a built-in answers `builtin_kind`.
    pub async fn update_identity_kind(
        &self,
        name: &str,
        patch: KindPatch,
    ) -> ServiceResult<KindView> {
        let kind = self.defined_kind(name)?;
        let change = KindChange {
            priority: patch.priority,
            limit: patch.limit,
            normalise: parse_normalise(patch.normalise.as_deref())?,
            blocked_values: patch.blocked_values.map(clean_blocked),
            enabled: patch.enabled,
        };
        self.change_kinds(|kinds| kinds.update(&kind, change).map(|_| ()))?;
        self.identity_kind(&kind)
    }

    /// Deletes a team's kind that nothing uses; one in use answers
    /// `kind_in_use` (disable it instead).
    pub async fn delete_identity_kind(&self, name: &str) -> ServiceResult<()> {
        let kind = self.defined_kind(name)?;
        if let IdentKind::Custom(custom) = &kind {
            if let Some(why) = self.why_in_use(custom)? {
                return Err(ServiceError::conflict_as(
                    "kind_in_use",
                    format!(
                        "identifier kind `{name}` is in use ({why}); disable it instead: \
                         PATCH {KINDS_URL}/{name} {{\"enabled\": false}}"
                    ),
                ));
            }
        }
        self.change_kinds(|kinds| kinds.remove(&kind).map(|_| ()))
    }

    /// Defines the kinds a preset needs that are not defined yet (one that
    /// exists is kept as the team set it).
    pub(crate) fn define_preset_kinds(&self, needed: &[PresetKind]) -> ServiceResult<()> {
        let config = self.store.identity_config();
        let missing: Vec<&PresetKind> = needed
            .iter()
            .filter(|k| {
                config
                    .kinds
                    .spec(&IdentKind::Custom(k.name.clone()))
                    .is_none()
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        self.change_kinds(|kinds| {
            for needed in &missing {
                let kind = IdentKind::Custom(needed.name.clone());
                // Checked again under the lock: another writer may have
                // defined it since.
                if kinds.spec(&kind).is_some() {
                    continue;
                }
                let spec = KindSpec {
                    name: kind,
                    limit: needed.limit,
                    normalise: needed.normalise,
                    blocked_values: Vec::new(),
                    enabled: true,
                    created_at: None,
                };
                kinds.add(spec, None)?;
            }
            Ok(())
        })
    }

    /// One kind's view.
    fn identity_kind(&self, kind: &IdentKind) -> ServiceResult<KindView> {
        let config = self.store.identity_config();
        let spec = config
            .kinds
            .spec(kind)
            .ok_or_else(|| unknown_kind(kind.as_str()))?;
        self.kind_view(&config.kinds, spec, &self.kinds_in_mappings()?)
    }

    /// The kind a path names, if defined.
    fn defined_kind(&self, name: &str) -> ServiceResult<IdentKind> {
        let kind = IdentKind::parse(name).map_err(|_| unknown_kind(name))?;
        match self.store.identity_config().kinds.spec(&kind) {
            Some(_) => Ok(kind),
            None => Err(unknown_kind(name)),
        }
    }

    /// Applies `change` to the current set and stores it, one writer at a
    /// time (see the module doc).
    fn change_kinds(
        &self,
        change: impl FnOnce(&mut KindSet) -> Result<(), KindError>,
    ) -> ServiceResult<()> {
        let _writer = self
            .kinds_writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut kinds = self.store.identity_config().kinds.clone();
        change(&mut kinds).map_err(kind_refused)?;
        self.store.put_identity_kinds(&kinds)?;
        Ok(())
    }

    fn kind_view(
        &self,
        kinds: &KindSet,
        spec: &KindSpec,
        mapped: &BTreeSet<KindName>,
    ) -> ServiceResult<KindView> {
        let in_use = match &spec.name {
            IdentKind::Custom(name) => mapped.contains(name) || self.store.kind_has_values(name)?,
            _ => true,
        };
        Ok(KindView {
            name: spec.name.clone(),
            priority: kinds.rank(&spec.name),
            limit: spec.limit,
            normalise: spec.normalise,
            blocked_values: spec.blocked_values.clone(),
            enabled: spec.enabled,
            builtin: spec.name.is_builtin(),
            created_at: spec.created_at,
            in_use,
        })
    }

    /// Why a team's kind is in use, said for the refusal; `None`: unused.
    fn why_in_use(&self, kind: &KindName) -> ServiceResult<Option<String>> {
        let sources = self.sources_mapping(kind)?;
        if !sources.is_empty() {
            return Ok(Some(format!(
                "the mapping of {} maps it",
                sources
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if self.store.kind_has_values(kind)? {
            return Ok(Some("profiles hold values of it".into()));
        }
        Ok(None)
    }

    /// The names of the sources whose current mapping maps `kind`.
    fn sources_mapping(&self, kind: &KindName) -> ServiceResult<Vec<String>> {
        Ok(self
            .current_identifier_kinds()?
            .into_iter()
            .filter(|(_, kinds)| kinds.contains(kind))
            .map(|(source, _)| source)
            .collect())
    }

    /// Every kind some source's current mapping maps.
    fn kinds_in_mappings(&self) -> ServiceResult<BTreeSet<KindName>> {
        Ok(self
            .current_identifier_kinds()?
            .into_values()
            .flatten()
            .collect())
    }

    /// Each source's name and the kinds its current mapping's
    /// `identifiers` name (names that are not valid kinds cannot be
    /// mapped, so they are skipped).
    fn current_identifier_kinds(&self) -> ServiceResult<BTreeMap<String, Vec<KindName>>> {
        let mut out = BTreeMap::new();
        for source in self.store.sources()? {
            let Some(version) = source.mapping_version else {
                continue;
            };
            let Some(saved) = self.store.mapping_version(source.id, version)? else {
                continue;
            };
            let kinds = saved
                .mapping
                .identifiers
                .iter()
                .flat_map(|named| named.keys())
                .filter_map(|name| KindName::parse(name).ok())
                .collect();
            out.insert(source.name.clone(), kinds);
        }
        Ok(out)
    }
}

/// `trim`, `lowercase` or `none`; `email` is the built-in's.
fn parse_normalise(text: Option<&str>) -> ServiceResult<Option<Normalise>> {
    let Some(text) = text else {
        return Ok(None);
    };
    match text.trim() {
        "trim" => Ok(Some(Normalise::Trim)),
        "lowercase" => Ok(Some(Normalise::Lowercase)),
        "none" => Ok(Some(Normalise::None)),
        "email" => Err(kind_refused(KindError::EmailNormalise)),
        other => Err(invalid_kind(
            "normalise",
            format!(
                "normalise `{}` is not known; use \"trim\", \"lowercase\" or \"none\"",
                other.chars().take(40).collect::<String>()
            ),
        )),
    }
}

/// Blocked values as compared: trimmed, blanks and repeats left out.
fn clean_blocked(values: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    values
        .into_iter()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty() && seen.insert(v.to_ascii_lowercase()))
        .collect()
}

/// The refusal for a kind nobody defined.
pub(crate) fn unknown_kind(name: &str) -> ServiceError {
    ServiceError::not_found_as(
        "unknown_kind",
        format!(
            "no identifier kind is named `{}`; the kinds are listed at GET {KINDS_URL}",
            name.chars().take(64).collect::<String>()
        ),
    )
}

fn invalid_kind(field: &str, message: String) -> ServiceError {
    ServiceError::Invalid {
        fields: BTreeMap::from([(field.to_owned(), message.clone())]),
        message,
        code: Some("invalid_kind"),
    }
}

/// A [`KindError`] as the service answers it.
fn kind_refused(e: KindError) -> ServiceError {
    let message = e.to_string();
    match e {
        KindError::Exists(_) => ServiceError::conflict_as("kind_exists", message),
        KindError::Unknown(name) => unknown_kind(&name),
        KindError::Builtin(_) | KindError::BuiltinName(_) => {
            ServiceError::conflict_as("builtin_kind", message)
        }
        KindError::BadName(_) | KindError::TooMany => invalid_kind("name", message),
        KindError::BadPriority(..) => invalid_kind("priority", message),
        KindError::BadLimit(_) => invalid_kind("limit", message),
        KindError::EmailNormalise => invalid_kind("normalise", message),
        KindError::TooManyBlocked => invalid_kind("blocked_values", message),
    }
}
