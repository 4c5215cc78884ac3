//! Services: each use case once, typed in and out.
