//! Processed states of new events, stored in chunks of up to 64 events
//! (and about 4 KiB) per sled key.
//!
//! `event_state`: key = the last event id of a chunk; value = `count: u32
//! LE`, then `count` × (event id (16 bytes) ‖ end offset `u32 LE`), then
//! the entries back to back (each: the event's log `Location` ‖ state JSON),
//! ids ascending. Chunks are written by the processor's batch transaction,
//! in id order, and never overlap, so the chunk holding an id is the first
//! key at or after it.
//!
//! A state that changes later (replay, erasure) goes to `state_overrides`
//! (event id → entry), which readers check first: rare writes, one key each.
//!
//! Why chunks: in sled a *new* key costs ~5 µs and a key per event was the
//! largest part of the processor's commit; 64 states per key cost ~1–2 µs
//! per event to write and one range lookup to read (measured, see
//! docs/performance.md).

use super::StoreResult;
use crate::domain::ids::EventId;

/// Most states per chunk.
pub(super) const CHUNK: usize = 64;

/// A chunk closes once its entries reach this many bytes. sled rewrites a
/// whole leaf (up to 17 keys) when it splits or consolidates one, and a leaf
/// over 128 KiB (a quarter of its 512 KiB segment) goes to a blob file of
/// its own: with 64 states of ~300 bytes a leaf was ~300 KiB, and creating
/// those files was 5% of all CPU under load (measured, docs/performance.md).
/// 4 KiB keeps a leaf near 70 KiB, inside sled's log.
const CHUNK_BYTES: usize = 4096;

const SLOT: usize = 20;

/// Splits a batch's new entries (id ascending) into (key, value) chunks of
/// at most `CHUNK` entries and about `CHUNK_BYTES`.
pub(super) fn chunks(entries: &[(EventId, Vec<u8>)]) -> Vec<([u8; 16], Vec<u8>)> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, entry)) in entries.iter().enumerate() {
        bytes += entry.len();
        if i + 1 - start == CHUNK || bytes >= CHUNK_BYTES || i + 1 == entries.len() {
            let chunk = &entries[start..=i];
            out.push((entries[i].0.to_bytes(), encode(chunk)));
            start = i + 1;
            bytes = 0;
        }
    }
    out
}

fn encode(chunk: &[(EventId, Vec<u8>)]) -> Vec<u8> {
    let data: usize = chunk.iter().map(|(_, e)| e.len()).sum();
    let mut out = Vec::with_capacity(4 + chunk.len() * SLOT + data);
    out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    let mut end = 0u32;
    for (id, entry) in chunk {
        end += entry.len() as u32;
        out.extend_from_slice(&id.to_bytes());
        out.extend_from_slice(&end.to_le_bytes());
    }
    for (_, entry) in chunk {
        out.extend_from_slice(entry);
    }
    out
}

/// The slots of a chunk: (id, end offset), and where the data starts.
fn slots(value: &[u8]) -> Option<(Vec<(EventId, usize)>, usize)> {
    let count = u32::from_le_bytes(value.get(..4)?.try_into().ok()?) as usize;
    let data = 4 + count.checked_mul(SLOT)?;
    let header = value.get(4..data)?;
    let slots = header
        .chunks_exact(SLOT)
        .map(|s| {
            let id = EventId::from_slice(&s[..16])?;
            let end = u32::from_le_bytes(s[16..20].try_into().ok()?) as usize;
            Some((id, end))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((slots, data))
}

/// The entry of `id` in a chunk.
fn find(value: &[u8], id: EventId) -> Option<&[u8]> {
    let (slots, data) = slots(value)?;
    let i = slots.binary_search_by_key(&id, |(s, _)| *s).ok()?;
    let start = if i == 0 { 0 } else { slots[i - 1].1 };
    value.get(data + start..data + slots[i].1)
}

/// The ids of a chunk, ascending.
pub(super) fn ids(value: &[u8]) -> Vec<EventId> {
    slots(value).map_or_else(Vec::new, |(s, _)| s.into_iter().map(|(id, _)| id).collect())
}

/// The stored entry (location ‖ state JSON) of an event: its override, or
/// its place in a chunk.
pub(super) fn get(
    chunks: &sled::Tree,
    overrides: &sled::Tree,
    id: EventId,
) -> StoreResult<Option<Vec<u8>>> {
    with_entry(chunks, overrides, id, <[u8]>::to_vec)
}

/// `read` applied to the stored entry of an event, without copying it: a
/// list reads a few hundred bytes of an entry whose mapped properties may
/// be megabytes (sled hands out its cached value, shared).
pub(super) fn with_entry<T>(
    chunks: &sled::Tree,
    overrides: &sled::Tree,
    id: EventId,
    read: impl FnOnce(&[u8]) -> T,
) -> StoreResult<Option<T>> {
    if let Some(entry) = overrides.get(id.to_bytes())? {
        return Ok(Some(read(&entry)));
    }
    let Some((_, value)) = chunks.range(id.to_bytes()..).next().transpose()? else {
        return Ok(None);
    };
    Ok(find(&value, id).map(read))
}

/// Rewrites the entry of `id` inside its chunk (erasure: the old state must
/// not survive in the chunk behind an override). Returns false when no
/// chunk holds `id`. The processor never rewrites a chunk, but retention may
/// remove one meanwhile: the compare-and-swap never brings it back.
pub(super) fn replace(chunks: &sled::Tree, id: EventId, entry: &[u8]) -> StoreResult<bool> {
    loop {
        let Some((key, value)) = chunks.range(id.to_bytes()..).next().transpose()? else {
            return Ok(false);
        };
        let Some(rebuilt) = with_entry_replaced(&value, id, entry) else {
            return Ok(false);
        };
        match chunks.compare_and_swap(&key, Some(&value), Some(rebuilt))? {
            Ok(()) => return Ok(true),
            Err(_) => continue,
        }
    }
}

/// A chunk with the entry of `id` replaced, or `None` when `id` is not in it.
fn with_entry_replaced(value: &[u8], id: EventId, entry: &[u8]) -> Option<Vec<u8>> {
    let (slots, data) = slots(value)?;
    slots.binary_search_by_key(&id, |(s, _)| *s).ok()?;
    let mut entries = Vec::with_capacity(slots.len());
    let mut start = 0;
    for (slot_id, end) in slots {
        let old = value.get(data + start..data + end)?;
        entries.push((
            slot_id,
            if slot_id == id {
                entry.to_vec()
            } else {
                old.to_vec()
            },
        ));
        start = end;
    }
    Some(encode(&entries))
}

/// Ids of processed events strictly before `upper`, newest first.
pub(super) fn newest_first(
    chunks: &sled::Tree,
    upper: EventId,
) -> impl Iterator<Item = StoreResult<EventId>> + '_ {
    let end = [0xff; 17];
    super::source_index::runs_newest_first(chunks, &[], &upper.to_bytes(), &end, ids, upper)
}

/// Removes every chunk whose events are all at or before `upto` (retention).
pub(super) fn prune(chunks: &sled::Tree, upto: EventId) -> StoreResult<u64> {
    let mut batch = sled::Batch::default();
    let mut removed = 0;
    for item in chunks.range(..=upto.to_bytes()) {
        let (key, value) = item?;
        removed += ids(&value).len() as u64;
        batch.remove(key);
    }
    chunks.apply_batch(batch)?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u128) -> EventId {
        EventId(uuid::Uuid::from_u128(n))
    }

    proptest! {
        /// Every entry written comes back by id, listing is newest first from
        /// any bound, and ids never written are not found.
        #[test]
        fn chunked_states_read_back(
            gaps in proptest::collection::vec(1u128..5, 1..300),
            batch in 1usize..200,
            bound in 0u128..1500,
        ) {
            let db = sled::Config::new().temporary(true).open().unwrap();
            let (tree, overrides) = (db.open_tree("c").unwrap(), db.open_tree("o").unwrap());
            let mut n = 0;
            let ids_written: Vec<EventId> = gaps.iter().map(|g| { n += g; id(n) }).collect();
            // Entries of ~150 bytes to ~9 KiB, so both the count and the
            // byte budget close chunks.
            let entries: Vec<(EventId, Vec<u8>)> = ids_written
                .iter()
                .zip(&gaps)
                .map(|(i, g)| (*i, format!("state of {}", i.0.as_u128()).repeat((g * g * g * 12) as usize).into_bytes()))
                .collect();
            for part in entries.chunks(batch) {
                for (k, v) in chunks(part) {
                    tree.insert(k, v).unwrap();
                }
            }
            for (i, entry) in &entries {
                let found = get(&tree, &overrides, *i).unwrap();
                prop_assert_eq!(found.as_ref(), Some(entry));
                let missing = id(i.0.as_u128() + 1);
                if !ids_written.contains(&missing) {
                    prop_assert_eq!(get(&tree, &overrides, missing).unwrap(), None);
                }
            }
            let listed: Vec<EventId> = newest_first(&tree, id(bound)).map(Result::unwrap).collect();
            let expected: Vec<EventId> = ids_written.iter().rev().filter(|i| **i < id(bound)).copied().collect();
            prop_assert_eq!(listed, expected);
        }
    }

    #[test]
    fn chunks_close_at_their_byte_budget() {
        let entries: Vec<(EventId, Vec<u8>)> = (1..=100).map(|n| (id(n), vec![0; 1000])).collect();
        let sizes: Vec<usize> = chunks(&entries).iter().map(|(_, v)| ids(v).len()).collect();
        // 1,000-byte states: a chunk closes at its fifth (5,000 >= 4,096).
        assert_eq!(sizes, [5; 20]);
        let (last, value) = chunks(&entries).pop().unwrap();
        assert_eq!(
            (last, ids(&value).last().copied()),
            (id(100).to_bytes(), Some(id(100)))
        );
    }

    #[test]
    fn replacing_an_entry_rewrites_only_it_inside_its_chunk() {
        let tree = sled::Config::new()
            .temporary(true)
            .open()
            .unwrap()
            .open_tree("t")
            .unwrap();
        let entries: Vec<(EventId, Vec<u8>)> = (1..=5)
            .map(|n| (id(n), format!("state {n} ann@x.io").into_bytes()))
            .collect();
        for (key, value) in chunks(&entries) {
            tree.insert(key, value).unwrap();
        }
        assert!(replace(&tree, id(3), b"scrubbed").unwrap());
        let overrides = sled::Config::new()
            .temporary(true)
            .open()
            .unwrap()
            .open_tree("o")
            .unwrap();
        assert_eq!(get(&tree, &overrides, id(3)).unwrap().unwrap(), b"scrubbed");
        assert_eq!(
            get(&tree, &overrides, id(4)).unwrap().unwrap(),
            b"state 4 ann@x.io"
        );
        assert_eq!(ids(&tree.iter().next().unwrap().unwrap().1).len(), 5);
        assert!(!replace(&tree, id(9), b"x").unwrap());
    }

    #[test]
    fn an_override_wins_and_pruning_drops_whole_chunks() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let (tree, overrides) = (db.open_tree("c").unwrap(), db.open_tree("o").unwrap());
        let entries: Vec<(EventId, Vec<u8>)> = (1..=200).map(|n| (id(n), vec![n as u8])).collect();
        for (k, v) in chunks(&entries) {
            tree.insert(k, v).unwrap();
        }
        overrides
            .insert(id(5).to_bytes(), &b"replayed"[..])
            .unwrap();
        assert_eq!(
            get(&tree, &overrides, id(5)).unwrap(),
            Some(b"replayed".to_vec())
        );
        // Chunks end at 64, 128, 192, 200: pruning up to 130 drops two.
        assert_eq!(prune(&tree, id(130)).unwrap(), 128);
        assert_eq!(get(&tree, &overrides, id(64)).unwrap(), None);
        assert_eq!(get(&tree, &overrides, id(129)).unwrap(), Some(vec![129]));
    }
}
