//! The processor's commit: one sled transaction per batch over the identity
//! trees, the event states, the cursor and counters, the error log and the
//! idempotency keys.
//!
//! One transaction per batch (not per event) is what keeps the processor
//! fast: sled's commit cost is paid once for hundreds of events. It also
//! makes a batch all-or-nothing: after a crash, either every event of the
//! batch is resolved, stated, counted and the cursor moved past it, or none
//! is and the batch runs again. The closure sled runs may be retried on a
//! conflict (a support merge landing at the same moment), so everything it
//! does goes through the transaction.

use super::events::{counts_key, encode_state, CURSOR_AT_KEY, CURSOR_KEY, STORED_KEY};
use super::identity::{SledTxn, TxError};
use super::log::Location;
use super::{encode, Store, StoreResult};
use crate::counters::Counts;
use crate::identity::{self, Blocklist, Outcome, ResolveInput};
use crate::ids::{EventId, SourceId};
use crate::model::{ErrorEntry, EventState};
use sled::Transactional;
use std::collections::HashMap;
use std::sync::Arc;

/// One processed event, ready to commit.
pub struct Planned {
    pub event_id: EventId,
    /// Where the event lives in the log (kept with its state).
    pub at: Location,
    pub state: EventState,
    pub errors: Vec<ErrorEntry>,
    /// Identity work left: the resolver input and the source's blocklist.
    pub resolve: Option<(ResolveInput, Arc<Blocklist>)>,
    /// The idempotency key (source ‖ key) this event claims.
    pub dedupe_key: Option<Vec<u8>>,
    /// Set on an event's first processing: its source, for the per-source index.
    pub index_under: Option<SourceId>,
}

impl Store {
    /// Commits a batch; `cursor` (the last new event of the batch and its
    /// place in the log) moves the processor on. `finish` folds a resolver outcome into the event's
    /// state and may add error-log entries; it must be pure (sled may call
    /// it again on a retry).
    pub fn commit_batch(
        &self,
        planned: &[Planned],
        cursor: Option<(EventId, Location)>,
        counts: &HashMap<SourceId, Counts>,
        finish: impl Fn(&Planned, &mut EventState, &mut Vec<ErrorEntry>, &Outcome),
    ) -> StoreResult<()> {
        let indexed: Vec<(SourceId, EventId)> = planned
            .iter()
            .filter_map(|p| p.index_under.map(|s| (s, p.event_id)))
            .collect();
        let index = super::source_index::entries(&indexed);
        let counts: Vec<(Vec<u8>, Vec<u8>)> = counts
            .iter()
            .map(|(s, c)| (counts_key(*s), encode(c)))
            .collect();
        let t = &self.trees;
        let trees = (
            &t.ident,
            &t.profiles,
            &t.redirects,
            &t.profile_events,
            &t.audit,
            &t.event_state,
            &t.state_overrides,
            &t.meta,
            &t.errors,
            &t.dedupe,
            &t.events_by_source,
        );
        trees
            .transaction(
                |(
                    ident,
                    profiles,
                    redirects,
                    profile_events,
                    audit,
                    states,
                    overrides,
                    meta,
                    errors,
                    dedupe,
                    by_source,
                )| {
                    let txn = SledTxn {
                        ident,
                        profiles,
                        redirects,
                        profile_events,
                        audit,
                    };
                    // New events' states go in chunks (id order); a state
                    // written again (replay) goes to the overrides.
                    let mut new_states = Vec::with_capacity(planned.len());
                    for item in planned {
                        let mut state = item.state.clone();
                        let mut entries = item.errors.clone();
                        if let Some((input, blocklist)) = &item.resolve {
                            let outcome = identity::resolve(&txn, input, blocklist)?;
                            finish(item, &mut state, &mut entries, &outcome);
                        }
                        let entry = encode_state(item.at, &state);
                        if item.index_under.is_some() {
                            new_states.push((item.event_id, entry));
                        } else {
                            overrides.insert(&item.event_id.to_bytes(), entry)?;
                        }
                        for entry in &entries {
                            errors.insert(&entry.id.to_bytes(), encode(entry))?;
                        }
                        if let Some(key) = &item.dedupe_key {
                            dedupe.insert(key.as_slice(), &item.event_id.to_bytes())?;
                        }
                    }
                    for (key, chunk) in super::state_chunks::chunks(&new_states) {
                        states.insert(&key[..], chunk)?;
                    }
                    if !new_states.is_empty() {
                        let stored = meta
                            .get(STORED_KEY)?
                            .and_then(|b| Some(u64::from_be_bytes(b.as_ref().try_into().ok()?)))
                            .unwrap_or(0);
                        let stored = stored + new_states.len() as u64;
                        meta.insert(STORED_KEY, &stored.to_be_bytes())?;
                    }
                    for (key, ids) in &index {
                        by_source.insert(&key[..], ids.as_slice())?;
                    }
                    if let Some((id, at)) = cursor {
                        meta.insert(CURSOR_KEY, &id.to_bytes())?;
                        meta.insert(CURSOR_AT_KEY, &at.to_bytes())?;
                    }
                    for (key, value) in &counts {
                        meta.insert(key.as_slice(), value.as_slice())?;
                    }
                    Ok::<_, TxError>(())
                },
            )
            .map_err(super::abort_reason)
    }
}
