//! The per-source index of processed events, one key per source per
//! processor batch.
//!
//! Key: source id ‖ the last event id of that source in the batch; value:
//! the batch's event ids of that source, ascending (16 bytes each).
//! Batches are committed in id order and never overlap, so keys are in id
//! order too.
//!
//! Why not one key per event: in sled, a *new* key costs about 5 µs (a
//! rewritten one under 1 µs), and four new keys per event were most of the
//! processor's commit (measured, see docs/performance.md). One key per batch makes this index nearly free.

use super::events::by_source_key;
use super::StoreResult;
use crate::domain::ids::{EventId, SourceId};
use std::collections::BTreeMap;

/// Groups a batch's new events by source: (key, value) pairs to insert.
pub(super) fn entries(events: &[(SourceId, EventId)]) -> Vec<([u8; 32], Vec<u8>)> {
    let mut by_source: BTreeMap<SourceId, Vec<EventId>> = BTreeMap::new();
    for (source, id) in events {
        by_source.entry(*source).or_default().push(*id);
    }
    by_source
        .into_iter()
        .filter_map(|(source, mut ids)| {
            ids.sort_unstable();
            let last = *ids.last()?;
            let value = ids.iter().flat_map(|id| id.to_bytes()).collect();
            Some((by_source_key(source, last), value))
        })
        .collect()
}

fn ids_of(value: &[u8]) -> Vec<EventId> {
    value
        .chunks_exact(16)
        .filter_map(EventId::from_slice)
        .collect()
}

fn last_id_of(key: &[u8]) -> Option<EventId> {
    key.get(16..32).and_then(EventId::from_slice)
}

/// A source's indexed event ids strictly before `upper`, newest first.
pub(super) fn newest_first(
    tree: &sled::Tree,
    source: SourceId,
    upper: EventId,
) -> impl Iterator<Item = StoreResult<EventId>> + '_ {
    let start = by_source_key(source, EventId(uuid::Uuid::nil()));
    let end = by_source_key(source, EventId(uuid::Uuid::max()));
    runs_newest_first(
        tree,
        &start,
        &by_source_key(source, upper),
        &end,
        ids_of,
        upper,
    )
}

/// Ids strictly before `upper`, newest first, from keys in `start..end`
/// that each hold an ascending run of ids and end in the run's last id (the
/// per-source index here, state chunks too). `at_upper` is the key a run
/// ending at `upper` would have.
pub(super) fn runs_newest_first<'a>(
    tree: &'a sled::Tree,
    start: &[u8],
    at_upper: &[u8],
    end: &[u8],
    ids: fn(&[u8]) -> Vec<EventId>,
    upper: EventId,
) -> impl Iterator<Item = StoreResult<EventId>> + 'a {
    // The one run whose last id is at or past `upper` may still hold ids
    // before it; every run keyed before `upper` is wholly before it.
    let straddling = tree.range(at_upper.to_vec()..end.to_vec()).next();
    let earlier = tree.range(start.to_vec()..at_upper.to_vec()).rev();
    straddling.into_iter().chain(earlier).flat_map(move |item| {
        let ids: Vec<StoreResult<EventId>> = match item {
            Ok((_, value)) => ids(&value)
                .into_iter()
                .rev()
                .filter(|id| *id < upper)
                .map(Ok)
                .collect(),
            Err(e) => vec![Err(e.into())],
        };
        ids
    })
}

/// Up to `limit` of a source's indexed event ids after `after`, oldest first.
pub(super) fn oldest_first(
    tree: &sled::Tree,
    source: SourceId,
    after: Option<EventId>,
    limit: usize,
) -> StoreResult<Vec<EventId>> {
    let after = after.unwrap_or(EventId(uuid::Uuid::nil()));
    let end = by_source_key(source, EventId(uuid::Uuid::max()));
    let mut out = Vec::new();
    // Batches whose last id is past `after`; only the first may hold ids up to it.
    for item in tree.range((
        std::ops::Bound::Excluded(by_source_key(source, after)),
        std::ops::Bound::Excluded(end),
    )) {
        let (_, value) = item?;
        out.extend(ids_of(&value).into_iter().filter(|id| *id > after));
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
    }
    Ok(out)
}

/// Removes every batch entry whose events are all at or before `upto`
/// (retention). A batch that straddles `upto` stays; its pruned ids are
/// skipped by readers, which find no event for them.
pub(super) fn prune(tree: &sled::Tree, upto: EventId) -> StoreResult<()> {
    let mut batch = sled::Batch::default();
    for key in tree.iter().keys() {
        let key = key?;
        if last_id_of(&key).is_some_and(|last| last <= upto) {
            batch.remove(key);
        }
    }
    tree.apply_batch(batch)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> EventId {
        EventId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn batches_read_back_in_order_from_any_bound() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("index").unwrap();
        let (a, b) = (SourceId::new(), SourceId::new());
        // Three committed batches, interleaving two sources.
        for batch in [
            vec![(a, id(1)), (b, id(2)), (a, id(3))],
            vec![(b, id(4)), (a, id(5)), (a, id(6))],
            vec![(a, id(7))],
        ] {
            for (k, v) in entries(&batch) {
                tree.insert(k, v).unwrap();
            }
        }
        let newest = |upper: u128| -> Vec<EventId> {
            newest_first(&tree, a, id(upper))
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(newest(100), vec![id(7), id(6), id(5), id(3), id(1)]);
        assert_eq!(newest(6), vec![id(5), id(3), id(1)]);
        assert_eq!(newest(1), Vec::<EventId>::new());
        let oldest =
            |after: Option<u128>, limit| oldest_first(&tree, a, after.map(id), limit).unwrap();
        assert_eq!(oldest(None, 10), vec![id(1), id(3), id(5), id(6), id(7)]);
        assert_eq!(oldest(Some(5), 10), vec![id(6), id(7)]);
        assert_eq!(oldest(Some(1), 2), vec![id(3), id(5)]);
        prune(&tree, id(5)).unwrap();
        // The first batch went; the second straddles 5 and stays.
        assert_eq!(newest(100), vec![id(7), id(6), id(5)]);
        let b_ids: Vec<EventId> = newest_first(&tree, b, id(100))
            .map(Result::unwrap)
            .collect();
        assert!(b_ids.is_empty());
    }
}
