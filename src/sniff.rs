//! The schema sniffer: learns, per source, what its records look like.
//!
//! (Filled in by the records/sniffer issue.)
