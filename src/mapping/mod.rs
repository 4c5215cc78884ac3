//! The template mapper: a source's mapping turns a record into a `MappedEvent`.
//!
//! (Filled in by the mapper issue.)
