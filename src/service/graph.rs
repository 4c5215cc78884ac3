//! How a profile was joined (`GET /api/profiles/{id}/graph` and the
//! profile page's section): the history read back into a graph.

use super::{ServiceError, ServiceResult, Services};
pub use crate::domain::identity::ProfileGraph;
use crate::domain::identity::{self, AuditEntry, Blocklist, IdentKey, Identifiers};
use crate::domain::ids::{EventId, ProfileId};
use crate::domain::model::MappedEvent;
use crate::store::StateStore;

/// The graph's types, named through the service that answers them.
pub use crate::domain::identity::{
    EventRef, GraphEdge, GraphNode, GraphRefusal, IdentifierOrigin, JoinedBy, MergeCause,
};

/// History lines read per page, and at most this many (after runs of
/// identical refusals are folded). A profile with 100 merges and hundreds
/// of visitor ids has a few thousand lines; a history longer than this is
/// read from its newest end and the graph says it is incomplete.
const PAGE: usize = 500;
const MAX_LINES: usize = 20_000;

/// The refusals whose events are read for what they arrived with: one
/// point read each, so bounded.
const REFUSAL_EVENTS: usize = 200;

impl Services {
    /// How the profile `id` was joined: each identifier with the event that
    /// first brought it, each merge with its event, and the refusals that
    /// kept it apart from other profiles. An absorbed id answers the live
    /// profile's graph.
    pub async fn profile_graph(&self, id: ProfileId) -> ServiceResult<ProfileGraph> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || -> ServiceResult<ProfileGraph> {
            let profile = store.profile(id)?.ok_or_else(|| {
                ServiceError::NotFound(format!("no profile `{id}` (it may have been erased)"))
            })?;
            let (lines, complete) = oldest_first(&store, profile.id)?;
            let mut graph =
                identity::build_graph(&profile, lines.iter().map(|(e, n)| (e, *n)), complete);
            let events = graph.refusal_events(REFUSAL_EVENTS);
            let config = store.identity_config();
            let mut kept = std::collections::BTreeMap::new();
            for event in events {
                let keys = store
                    .event_state(event)?
                    .and_then(|state| state.mapped)
                    .map(|mapped| event_keys(&mapped, &config.kinds));
                kept.insert(event, keys);
            }
            graph.arrived_with(|event: EventId| kept.get(&event).cloned().flatten());
            Ok(graph)
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
    }
}

/// The profile's history, oldest first, with each line's folded count;
/// false when it was longer than `MAX_LINES` and its oldest part unread.
fn oldest_first(
    store: &impl StateStore,
    id: ProfileId,
) -> ServiceResult<(Vec<(AuditEntry, u64)>, bool)> {
    let mut lines = Vec::new();
    let mut before = None;
    loop {
        let page = store.profile_history_page(id, PAGE, before)?;
        lines.extend(page.history.into_iter().map(|l| (l.entry, l.count)));
        match page.next {
            Some(next) if lines.len() < MAX_LINES => before = Some(next),
            Some(_) => {
                lines.reverse();
                return Ok((lines, false));
            }
            None => break,
        }
    }
    lines.reverse();
    Ok((lines, true))
}

/// An event's identifiers as the resolver saw them, strongest first
/// (normalised by the built-in placeholders: a source's own blocked values
/// may show here though the event dropped them, which only names them).
fn event_keys(mapped: &MappedEvent, kinds: &identity::KindSet) -> Vec<IdentKey> {
    let raw = Identifiers {
        external_id: mapped.external_id.clone(),
        email: mapped.email.clone(),
        visitor_id: mapped.visitor_id.clone(),
        other: mapped.identifiers.clone(),
    };
    let (clean, _) = identity::normalise(&raw, kinds, &Blocklist::default());
    clean.keys(kinds)
}
