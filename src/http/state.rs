//! What every handler gets: the services, and what only HTTP needs (the
//! admin token, dashboard sessions, the auth guard, metrics).

use crate::config::Config;
use crate::domain::source::SecretHash;
use crate::metrics::Metrics;
use crate::service::Services;
use std::sync::Arc;

/// Everything a request handler needs: one `Arc`, so
/// the clone axum makes for every request is one atomic increment (it was
/// ~20, one per tree handle and shared part, measured at ~10% of the hook
/// path's CPU).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    /// The use cases; handlers call these.
    pub services: Services,
    pub config: Arc<Config>,
    pub admin_token: Arc<SecretHash>,
    /// Dashboard logins (in memory: a restart logs everyone out).
    pub sessions: Arc<crate::http::dashboard::Sessions>,
    pub metrics: Arc<Metrics>,
    /// Failed admin-token attempts, per address and in all (`guard`).
    pub auth_guard: crate::http::guard::AuthGuard,
}
