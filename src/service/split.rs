//! Undoing a wrong merge (a split), and the never-merge rules splits leave.
//! One use case each for the API and the dashboard.

use super::{ServiceError, ServiceResult, Services};
use crate::domain::identity::{self, IdentKey, NeverMergeRule, SplitRefusal, SplitRequest};
use crate::domain::ids::ProfileId;
use crate::store::StateStore;
use serde::Serialize;
use uuid::Uuid;

/// Longest reason kept with a split.
pub const MAX_REASON_CHARS: usize = 1000;

/// What to split: a `merge` line of the profile's history.
#[derive(Clone, Debug)]
pub struct SplitInput {
    pub profile_id: ProfileId,
    pub merge_id: Uuid,
    /// Who asks: the dashboard, or `api`.
    pub by: String,
    pub reason: String,
}

/// One profile a split left.
#[derive(Clone, Debug, Serialize)]
pub struct SplitProfile {
    pub id: ProfileId,
    /// Strongest kind first within the built-ins, then a team's kinds.
    pub identifiers: Vec<IdentKey>,
    pub event_count: u64,
}

/// The answer to a split: `{"merge_id", "profiles", "never_merge"}`.
#[derive(Clone, Debug, Serialize)]
pub struct SplitReport {
    pub merge_id: Uuid,
    pub profiles: Vec<SplitProfile>,
    /// The rules it made (one per profile the merge had absorbed).
    pub never_merge: Vec<NeverMergeRule>,
}

fn refused(refusal: SplitRefusal) -> ServiceError {
    let message = refusal.to_string();
    if refusal.is_not_found() {
        return ServiceError::NotFound(message);
    }
    ServiceError::conflict_as(refusal.code(), message)
}

/// What a split of a merge would do, said before it runs.
#[derive(Clone, Debug, Serialize)]
pub struct SplitPreview {
    /// The live profile holding the merge.
    pub profile_id: ProfileId,
    pub merge_id: Uuid,
    /// The event that merged, and when the merge was recorded.
    pub event_id: Option<crate::domain::ids::EventId>,
    pub at: chrono::DateTime<chrono::Utc>,
    /// The profile that survived the merge and those it absorbed.
    pub survivor: ProfileId,
    pub absorbed: Vec<ProfileId>,
    /// The identifier pairs that would be kept apart.
    pub pairs: Vec<(IdentKey, IdentKey)>,
    /// The profile's events the split re-resolves.
    pub event_count: u64,
}

impl Services {
    /// Checks that a merge can be split and says what the split would do
    /// (the dashboard's confirmation); refused as `split_profile` refuses.
    pub async fn split_preview(
        &self,
        profile_id: ProfileId,
        merge_id: Uuid,
    ) -> ServiceResult<SplitPreview> {
        let store = self.store.clone();
        let found = tokio::task::spawn_blocking(move || -> crate::store::StoreResult<_> {
            let Some(live) = store.profile(profile_id)? else {
                return Ok(Err(SplitRefusal::ProfileNotFound(profile_id)));
            };
            let history = store.profile_history(live.id)?;
            let request = SplitRequest {
                profile_id,
                merge_id,
                by: String::new(),
                reason: String::new(),
            };
            let preview = identity::splittable_merge(&history, &live, merge_id).and_then(
                |(entry, merged)| {
                    let rules = identity::never_merge_rules(entry, merged, &request)?;
                    Ok(SplitPreview {
                        profile_id: live.id,
                        merge_id,
                        event_id: entry.event_id,
                        at: entry.at,
                        survivor: entry.profile_id,
                        absorbed: merged.absorbed.clone(),
                        pairs: rules.into_iter().map(|r| (r.a, r.b)).collect(),
                        event_count: live.event_count,
                    })
                },
            );
            Ok(preview)
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))??;
        found.map_err(refused)
    }

    /// Undoes one merge: the absorbed profile comes back with what its
    /// events bring, the pair that joined them becomes a never-merge rule.
    /// 404 for an unknown profile or merge line, 409 (with a code) for a
    /// merge that cannot be split (`merge_already_split`, a manual merge,
    /// a profile too large).
    pub async fn split_profile(&self, input: SplitInput) -> ServiceResult<SplitReport> {
        if input.reason.chars().count() > MAX_REASON_CHARS {
            return Err(ServiceError::BadRequest(format!(
                "the reason is longer than {MAX_REASON_CHARS} characters"
            )));
        }
        let request = SplitRequest {
            profile_id: input.profile_id,
            merge_id: input.merge_id,
            by: input.by,
            reason: input.reason.trim().to_string(),
        };
        let store = self.store.clone();
        let started = std::time::Instant::now();
        let done = tokio::task::spawn_blocking(move || store.split_profile(&request))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??
            .map_err(refused)?;
        tracing::info!(
            merge = %done.merge_id,
            profiles = done.profiles.len(),
            events = done.events.len(),
            ms = started.elapsed().as_millis() as u64,
            "merge split"
        );
        let kinds = self.store.identity_config();
        Ok(SplitReport {
            merge_id: done.merge_id,
            profiles: done
                .profiles
                .iter()
                .map(|p| SplitProfile {
                    id: p.id,
                    identifiers: {
                        let mut keys = p.keys();
                        keys.sort_by_key(|k| kinds.kinds.rank(k.kind()));
                        keys
                    },
                    event_count: p.event_count,
                })
                .collect(),
            never_merge: done.rules,
        })
    }

    /// Every never-merge rule, oldest first.
    pub async fn never_merge_rules(&self) -> ServiceResult<Vec<NeverMergeRule>> {
        let mut rules = self.store.identity_config().never.rules().to_vec();
        rules.sort_by_key(|r| r.id);
        Ok(rules)
    }

    /// Removes a never-merge rule. Later events may merge its pair again;
    /// nothing is merged back by removing it.
    pub async fn remove_never_merge(&self, id: Uuid) -> ServiceResult<NeverMergeRule> {
        self.store
            .remove_never_merge(id)?
            .ok_or_else(|| ServiceError::NotFound(format!("no never-merge rule `{id}`")))
    }
}
