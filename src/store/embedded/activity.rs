//! The time-bucket counters (`domain::activity`) in the `meta` tree:
//! `activity/` ‖ source id ‖ window tag (one byte) ‖ slot (u16 BE) →
//! `Bucket` JSON. A key names a ring slot, not a time, so a newer bucket
//! overwrites the one a full turn older and the keys never grow past
//! 140 per source (see `domain::activity` for the bound). Written only in
//! the processor's commit transaction (`batch`), read once at start.

use super::{decode, Store, StoreResult};
use crate::domain::activity::{Bucket, SlotKey, Window};
use crate::domain::ids::SourceId;

const ACTIVITY_PREFIX: &[u8] = b"activity/";

pub(super) fn activity_key(key: &SlotKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(ACTIVITY_PREFIX.len() + 19);
    out.extend_from_slice(ACTIVITY_PREFIX);
    out.extend_from_slice(&key.source.to_bytes());
    out.push(key.window.tag());
    out.extend_from_slice(&key.slot.to_be_bytes());
    out
}

fn parse_key(key: &[u8]) -> Option<SlotKey> {
    let rest = key.strip_prefix(ACTIVITY_PREFIX)?;
    let (source, rest) = rest.split_at_checked(16)?;
    let (&tag, slot) = rest.split_first()?;
    Some(SlotKey {
        source: SourceId::from_slice(source)?,
        window: Window::from_tag(tag)?,
        slot: u16::from_be_bytes(slot.try_into().ok()?),
    })
}

impl Store {
    /// Every persisted bucket (at most 140 per source).
    pub(super) fn persisted_activity(&self) -> StoreResult<Vec<(SlotKey, Bucket)>> {
        let mut out = Vec::new();
        for item in self.trees.meta.scan_prefix(ACTIVITY_PREFIX) {
            let (key, value) = item?;
            // A key this version cannot read is skipped, not fatal: the
            // buckets are a picture, and a wrong one rolls off by itself.
            if let Some(slot) = parse_key(&key) {
                out.push((slot, decode("meta", &value)?));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_key_reads_back() {
        let key = SlotKey {
            source: SourceId::new(),
            window: Window::Hour,
            slot: 47,
        };
        assert_eq!(parse_key(&activity_key(&key)), Some(key));
        assert_eq!(parse_key(b"activity/short"), None);
    }
}
