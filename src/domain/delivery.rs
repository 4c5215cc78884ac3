//! Redelivery: a sender that lost our 202 sends the same delivery again,
//! with the same delivery id (`domain::signature::delivery_id`). The first
//! acceptance is remembered for the source's window, so a retry is answered
//! with the first delivery's event ids and nothing is stored twice.

use crate::domain::ids::EventId;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// A claim older than this is taken to be left by a request that died
/// (a crash, a sender that hung up): a request takes at most the body
/// deadline and a flush, far less than this.
pub const STALE_CLAIM_S: i64 = 120;

/// What the store remembers of one delivery id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// A request with this id is being accepted now.
    InFlight { since: DateTime<Utc> },
    /// Accepted at `at` as these events; kept until `keep_until`.
    Accepted {
        at: DateTime<Utc>,
        ids: Vec<EventId>,
        keep_until: DateTime<Utc>,
    },
}

/// The answer to "may this request be accepted as new?".
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// Yes: it is now in flight under this request's claim.
    Claimed,
    /// No: the same delivery was accepted within the window, as these.
    Redelivery(Vec<EventId>),
    /// Not yet known: another request with the same id is being accepted.
    InFlight,
}

impl DeliveryState {
    /// What a new request with this id gets, given the current state.
    pub fn claim(current: Option<&DeliveryState>, now: DateTime<Utc>, window_s: u64) -> Claim {
        match current {
            None => Claim::Claimed,
            Some(DeliveryState::InFlight { since }) => {
                if now - *since > Duration::seconds(STALE_CLAIM_S) {
                    Claim::Claimed
                } else {
                    Claim::InFlight
                }
            }
            Some(DeliveryState::Accepted { at, ids, .. }) => {
                let window = Duration::seconds(i64::try_from(window_s).unwrap_or(i64::MAX / 2));
                if now - *at < window {
                    Claim::Redelivery(ids.clone())
                } else {
                    Claim::Claimed
                }
            }
        }
    }

    /// Whether pruning may drop this entry at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        match self {
            DeliveryState::InFlight { since } => now - *since > Duration::seconds(STALE_CLAIM_S),
            DeliveryState::Accepted { keep_until, .. } => now > *keep_until,
        }
    }

    pub fn accepted(ids: Vec<EventId>, now: DateTime<Utc>, window_s: u64) -> Self {
        let window = Duration::seconds(i64::try_from(window_s).unwrap_or(i64::MAX / 2));
        DeliveryState::Accepted {
            at: now,
            ids,
            keep_until: now
                .checked_add_signed(window)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_a_redelivery_within_its_window_only() {
        let now = Utc::now();
        let ids = vec![EventId::new()];
        let accepted = DeliveryState::accepted(ids.clone(), now, 60);
        assert_eq!(DeliveryState::claim(None, now, 60), Claim::Claimed);
        assert_eq!(
            DeliveryState::claim(Some(&accepted), now + Duration::seconds(59), 60),
            Claim::Redelivery(ids)
        );
        assert_eq!(
            DeliveryState::claim(Some(&accepted), now + Duration::seconds(61), 60),
            Claim::Claimed
        );
        assert!(accepted.expired(now + Duration::seconds(61)));
        assert!(!accepted.expired(now));
    }

    #[test]
    fn a_claim_in_flight_holds_until_it_is_stale() {
        let now = Utc::now();
        let held = DeliveryState::InFlight { since: now };
        assert_eq!(DeliveryState::claim(Some(&held), now, 60), Claim::InFlight);
        let later = now + Duration::seconds(STALE_CLAIM_S + 1);
        assert_eq!(DeliveryState::claim(Some(&held), later, 60), Claim::Claimed);
    }
}
