//! The domain: pure types and rules, no I/O.

pub mod activity;
pub mod counters;
pub mod decode;
pub mod delivery;
pub mod events;
pub mod excerpt;
pub mod identity;
pub mod ids;
pub mod mapping;
pub mod model;
pub mod preview;
pub mod records;
pub mod redact;
pub mod replay;
pub mod schema_view;
pub mod sealed;
pub mod signature;
pub mod sniff;
pub mod source;
pub mod source_view;
pub mod summary;
pub mod views;
