//! Storage: the seam the pipeline and the services use, and its backends.

pub mod embedded;

pub use embedded::*;
