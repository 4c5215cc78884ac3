//! Typed identifiers.
//!
//! Every id kind is its own newtype so a `SourceId` can never be passed where a
//! `ProfileId` belongs. Event and error ids are UUID v7: their big-endian bytes
//! sort by creation time, which is what lets the store scan newest-first
//! without an extra index.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $ctor:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh id.
            pub fn new() -> Self {
                Self(Uuid::$ctor())
            }
            /// The 16 big-endian bytes used as (part of) a sled key.
            pub fn to_bytes(self) -> [u8; 16] {
                *self.0.as_bytes()
            }
            /// Reads an id back from key bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                Uuid::from_slice(bytes).ok().map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A webhook source (one secret URL, one mapping history).
    SourceId,
    now_v7
);
uuid_id!(
    /// One stored record (one event). Time ordered.
    EventId,
    now_v7
);
uuid_id!(
    /// A user profile that identities resolve to.
    ProfileId,
    now_v7
);
uuid_id!(
    /// One error-log entry. Time ordered.
    ErrorId,
    now_v7
);
uuid_id!(
    /// One accepted HTTP request (a batch of records).
    RequestId,
    now_v7
);

impl EventId {
    /// The first v7 id of a Unix millisecond (v7 puts it in the top 48
    /// bits): a time bound as an id bound.
    pub fn first_at(millis: i64) -> Self {
        let millis = u128::try_from(millis.max(0)).unwrap_or(0) & ((1 << 48) - 1);
        Self(Uuid::from_u128(millis << 80))
    }

    /// The Unix millisecond the id was made in.
    pub fn millis(self) -> i64 {
        // 48 bits always fit an i64.
        i64::try_from(self.0.as_u128() >> 80).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_sort_by_creation_time() {
        let a = EventId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = EventId::new();
        assert!(a.to_bytes() < b.to_bytes());
    }

    #[test]
    fn an_event_id_knows_its_millisecond() {
        let id = EventId::new();
        assert_eq!(EventId::first_at(id.millis()).millis(), id.millis());
        assert!(EventId::first_at(id.millis()) <= id);
        assert!(EventId::first_at(id.millis() + 1) > id);
    }

    #[test]
    fn ids_round_trip_through_text_and_bytes() {
        let id = SourceId::new();
        assert_eq!(id.to_string().parse::<SourceId>().unwrap(), id);
        assert_eq!(SourceId::from_slice(&id.to_bytes()), Some(id));
    }
}
