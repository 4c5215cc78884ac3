//! Delivery ids a source accepted (redelivery, `domain::delivery`).
//!
//! Tree `deliveries`: `d` ‖ source id ‖ delivery id → `DeliveryState` JSON;
//! `n` ‖ source id → how many redeliveries were answered (u64 BE). A claim
//! is a compare-and-swap on the delivery's key, so of two requests with one
//! id only one stores; the other waits for it or is told it is in flight.
//! Written without a synchronous flush, like the error log: sled's periodic
//! flush bounds what a crash loses (then a retry is stored again, as it
//! would have been without this).

use super::{decode, encode, Store, StoreResult};
use crate::domain::delivery::{Claim, DeliveryState};
use crate::domain::ids::{EventId, SourceId};
use chrono::{DateTime, Utc};

const DELIVERY: u8 = b'd';
const COUNT: u8 = b'n';
const TREE: &str = "deliveries";

fn delivery_key(source: SourceId, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(17 + id.len());
    key.push(DELIVERY);
    key.extend_from_slice(&source.to_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

fn count_key(source: SourceId) -> Vec<u8> {
    let mut key = vec![COUNT];
    key.extend_from_slice(&source.to_bytes());
    key
}

impl Store {
    pub(super) fn claim_delivery(
        &self,
        source: SourceId,
        id: &str,
        now: DateTime<Utc>,
        window_s: u64,
    ) -> StoreResult<Claim> {
        let tree = &self.trees.deliveries;
        let key = delivery_key(source, id);
        let claim = encode(&DeliveryState::InFlight { since: now });
        loop {
            let current = tree.get(&key)?;
            let state: Option<DeliveryState> =
                current.as_deref().map(|b| decode(TREE, b)).transpose()?;
            match DeliveryState::claim(state.as_ref(), now, window_s) {
                Claim::Claimed => {
                    let swapped = tree.compare_and_swap(&key, current, Some(claim.as_slice()))?;
                    if swapped.is_ok() {
                        return Ok(Claim::Claimed);
                    }
                    // Another request changed it meanwhile: look again.
                }
                Claim::Redelivery(ids) => {
                    self.count_redelivery(source)?;
                    return Ok(Claim::Redelivery(ids));
                }
                Claim::InFlight => return Ok(Claim::InFlight),
            }
        }
    }

    /// Records the claimed delivery as accepted (`Some`) or releases the
    /// claim (`None`, the request was refused or failed).
    pub(super) fn settle_delivery(
        &self,
        source: SourceId,
        id: &str,
        accepted: Option<&[EventId]>,
        now: DateTime<Utc>,
        window_s: u64,
    ) -> StoreResult<()> {
        let key = delivery_key(source, id);
        match accepted {
            Some(ids) => {
                let state = DeliveryState::accepted(ids.to_vec(), now, window_s);
                self.trees.deliveries.insert(key, encode(&state))?;
            }
            None => {
                self.trees.deliveries.remove(key)?;
            }
        }
        Ok(())
    }

    fn count_redelivery(&self, source: SourceId) -> StoreResult<()> {
        self.trees
            .deliveries
            .update_and_fetch(count_key(source), |old| {
                let n = old.and_then(read_u64).unwrap_or(0);
                Some((n + 1).to_be_bytes().to_vec())
            })?;
        Ok(())
    }

    pub(super) fn redelivered(&self, source: SourceId) -> StoreResult<u64> {
        Ok(self
            .trees
            .deliveries
            .get(count_key(source))?
            .as_deref()
            .and_then(read_u64)
            .unwrap_or(0))
    }

    /// Drops delivery ids past their window and stale claims; returns how many.
    pub(super) fn prune_deliveries(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut pruned = 0;
        for item in self.trees.deliveries.scan_prefix([DELIVERY]) {
            let (key, value) = item?;
            let state: DeliveryState = decode(TREE, &value)?;
            if state.expired(now) {
                // Only if unchanged: a new claim may have replaced it.
                if self
                    .trees
                    .deliveries
                    .compare_and_swap(&key, Some(value), None as Option<&[u8]>)?
                    .is_ok()
                {
                    pruned += 1;
                }
            }
        }
        Ok(pruned)
    }
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_wins_and_a_redelivery_is_counted() {
        let store = Store::temporary().unwrap();
        let source = SourceId::new();
        let now = Utc::now();
        assert_eq!(
            store.claim_delivery(source, "d1", now, 60).unwrap(),
            Claim::Claimed
        );
        assert_eq!(
            store.claim_delivery(source, "d1", now, 60).unwrap(),
            Claim::InFlight
        );
        let ids = vec![EventId::new()];
        store
            .settle_delivery(source, "d1", Some(&ids), now, 60)
            .unwrap();
        assert_eq!(
            store.claim_delivery(source, "d1", now, 60).unwrap(),
            Claim::Redelivery(ids)
        );
        assert_eq!(store.redelivered(source).unwrap(), 1);
        assert_eq!(
            store
                .claim_delivery(SourceId::new(), "d1", now, 60)
                .unwrap(),
            Claim::Claimed
        );
        let later = now + chrono::Duration::seconds(61);
        assert_eq!(store.prune_deliveries(later).unwrap(), 1);
        assert_eq!(
            store.claim_delivery(source, "d1", later, 60).unwrap(),
            Claim::Claimed
        );
    }

    #[test]
    fn a_released_claim_lets_the_retry_in() {
        let store = Store::temporary().unwrap();
        let source = SourceId::new();
        let now = Utc::now();
        assert_eq!(
            store.claim_delivery(source, "d", now, 60).unwrap(),
            Claim::Claimed
        );
        store.settle_delivery(source, "d", None, now, 60).unwrap();
        assert_eq!(
            store.claim_delivery(source, "d", now, 60).unwrap(),
            Claim::Claimed
        );
    }
}
