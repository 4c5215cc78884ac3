//! Services: each use case once, typed in and out, with the domain error it
//! can fail with. The JSON API and the dashboard both call these; neither
//! knows the other, and nothing here knows HTTP.

pub mod activity;
pub mod error;
pub mod errors;
pub mod events;
pub mod graph;
pub mod identity_kinds;
pub mod ingest;
pub mod mappings;
pub mod profiles;
pub mod sessions;
pub mod sources;
pub mod split;

pub use error::{ServiceError, ServiceResult, StoreError};

use crate::config::Config;
use crate::domain::counters::Counters;
use crate::pipeline::Processor;
use crate::store::GroupCommit;
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::Notify;

/// The handles the use cases need. One `Arc`, so the clone axum makes for
/// every request is one atomic increment.
#[derive(Clone)]
pub struct Services(Arc<Handles>);

/// The parts of [`Services`].
pub struct Handles {
    pub config: Arc<Config>,
    pub store: Store,
    pub commit: Arc<GroupCommit>,
    pub counters: Arc<Counters>,
    /// Rung after every append so the pipeline wakes without polling.
    pub new_events: Arc<Notify>,
    pub processor: Arc<Processor>,
    /// Seals and opens sources' signing secrets (`domain::sealed`).
    pub secret_key: Arc<crate::domain::sealed::SecretKey>,
    /// The per-source token buckets of the hook path (`sources::RateLimiters`).
    pub rate_limits: sources::RateLimiters,
    /// Serialises changes to the identifier kinds (a read-modify-write of
    /// the whole set; see `identity_kinds`). Held over synchronous store
    /// calls only.
    pub kinds_writer: std::sync::Mutex<()>,
}

impl Services {
    pub fn new(handles: Handles) -> Self {
        Self(Arc::new(handles))
    }
}

impl std::ops::Deref for Services {
    type Target = Handles;
    fn deref(&self) -> &Handles {
        &self.0
    }
}

/// What `/healthz` reports about this node.
pub struct Health {
    pub backend: &'static str,
    /// Whether this node runs the processor now (holds the lease).
    pub processing: bool,
    /// Why the store does not answer, if it does not.
    pub unreachable: Option<String>,
}

impl Services {
    /// Whether the store answers (PostgreSQL's `SELECT 1`, kept about a
    /// second), and this node's part. Blocks: call on the blocking pool.
    pub fn health(&self) -> Health {
        use crate::store::StateStore;
        let store = &self.0.store;
        Health {
            backend: store.backend_name(),
            processing: store.may_process(),
            unreachable: store.check_reachable().err().map(|e| e.to_string()),
        }
    }
}
