//! The identity resolver: normalises identifiers and joins events to profiles.
//!
//! (Filled in by the identity issue.)
