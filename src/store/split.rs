//! What a split reads first, the same on both backends: the live profile,
//! the merge to undo and the never-merge rules it leaves behind, and the
//! profile's events in arrival order. Each backend then reads the events'
//! states its own way and runs the rebuild in its own transaction.

use super::{StateStore, StoreResult};
use crate::domain::identity::{
    self, Blocklist, NeverMergeRule, Profile, SplitRefusal, SplitRequest, MAX_SPLIT_EVENTS,
};
use crate::domain::ids::{EventId, SourceId};
use std::collections::HashMap;
use std::sync::Arc;

/// The profile a split works on and what it rebuilds from.
pub(super) struct SplitHead {
    pub live: Profile,
    pub rules: Vec<NeverMergeRule>,
    /// The profile's events (merged profiles' included), oldest first.
    pub events: Vec<EventId>,
}

/// Reads the profile, checks that its merge `request.merge_id` can be
/// undone, and lists its events; the inner `Err` says why a split is
/// refused.
pub(super) fn split_head(
    store: &impl StateStore,
    request: &SplitRequest,
) -> StoreResult<Result<SplitHead, SplitRefusal>> {
    let Some(live) = store.profile(request.profile_id)? else {
        return Ok(Err(SplitRefusal::ProfileNotFound(request.profile_id)));
    };
    let history = store.profile_history(live.id)?;
    let rules = match identity::splittable_merge(&history, &live, request.merge_id)
        .and_then(|(entry, merged)| identity::never_merge_rules(entry, merged, request))
    {
        Ok(rules) => rules,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let mut events = store.profile_events(live.id, MAX_SPLIT_EVENTS + 1, None)?;
    if events.len() > MAX_SPLIT_EVENTS {
        return Ok(Err(SplitRefusal::TooLarge));
    }
    // Arrival order: event ids are UUID v7 in log order.
    events.reverse();
    Ok(Ok(SplitHead {
        live,
        rules,
        events,
    }))
}

/// Each source's blocklist (its extra values), read once per split; a
/// deleted source's events use the built-in list.
#[derive(Default)]
pub(super) struct Blocklists(HashMap<SourceId, Arc<Blocklist>>);

impl Blocklists {
    pub fn of(&mut self, store: &impl StateStore, source: SourceId) -> StoreResult<Arc<Blocklist>> {
        if let Some(b) = self.0.get(&source) {
            return Ok(b.clone());
        }
        let b = Arc::new(match store.source(source)? {
            Some(s) => Blocklist::with_extra(&s.blocked_values),
            None => Blocklist::default(),
        });
        self.0.insert(source, b.clone());
        Ok(b)
    }
}

#[cfg(test)]
pub(super) mod testing {
    use crate::domain::identity::{self, Blocklist};
    use crate::domain::ids::SourceId;
    use crate::domain::model::{EventState, EventStatus, MappedEvent};
    use crate::store::{Logged, Planned};
    use std::sync::Arc;

    /// A batch item that resolves `logged` as `mapped`: what both
    /// backends' split tests commit before splitting.
    pub fn resolved(
        logged: &Logged,
        source: SourceId,
        mapped: MappedEvent,
        blocklist: &Arc<Blocklist>,
    ) -> Planned {
        let input = identity::resolve_input(logged.raw.id, source, &mapped);
        Planned {
            event_id: logged.raw.id,
            at: logged.at,
            state: EventState {
                status: Some(EventStatus::Resolved),
                mapped: Some(Arc::new(mapped)),
                ..EventState::default()
            },
            errors: Vec::new(),
            resolve: Some((input, blocklist.clone())),
            dedupe_key: None,
            index_under: Some(source),
        }
    }
}
