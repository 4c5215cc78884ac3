//! The connection pool and the bridge from the synchronous seam to sqlx.
//!
//! The seam is synchronous (sled is, and the pipeline runs on its own
//! threads), sqlx is async. The backend owns a small tokio runtime of its
//! own (`inlet-pg` threads) that drives the connections' sockets and
//! timers; [`Db::block`] runs a query future to completion on the calling
//! thread with that runtime entered. On a worker of a multi-threaded
//! runtime (a request handler calling a short lookup in place) it first
//! tells tokio the thread will block (`block_in_place`), so the worker's
//! other tasks move on. Callers that may wait long (scans, saves, the
//! processor) already run on the blocking pool or their own threads.

use crate::store::{StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// The pool and the runtime its connections live on. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Db {
    pub pool: PgPool,
    /// Where queries and background tasks run.
    runtime: Handle,
    /// Keeps the runtime alive while any handle is.
    _owner: Arc<OwnedRuntime>,
}

/// The backend's runtime, shut down in the background when the last
/// handle goes: a plain `Runtime` panics when dropped on an async thread
/// (a start that fails after connecting drops the store inside
/// `Application::build`), and its tasks hold nothing that needs waiting for.
struct OwnedRuntime(Option<Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Db {
    /// Starts the runtime and opens the pool (lazily: connections are made
    /// when first used, so a node starts while PostgreSQL is still coming
    /// up, and [`Db::wait_reachable`] says when it is there).
    pub fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("inlet-pg")
            .enable_all()
            .build()
            .map_err(StoreError::io("starting the database runtime"))?;
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Migrate(format!("the database URL is not valid: {e}")))?
            .application_name("inlet");
        let pool = {
            let _entered = runtime.enter();
            PgPoolOptions::new()
                .max_connections(max_connections)
                .min_connections(0)
                // A request waits at most this long for a connection; past
                // it the database counts as unavailable (503, Retry-After).
                .acquire_timeout(Duration::from_secs(3))
                .connect_lazy_with(options)
        };
        Ok(Self {
            pool,
            runtime: runtime.handle().clone(),
            _owner: Arc::new(OwnedRuntime(Some(runtime))),
        })
    }

    /// Runs `fut` to completion on this thread, with the backend's runtime
    /// entered (see the module comment).
    pub fn block<F: Future>(&self, fut: F) -> F::Output {
        let on_async_worker = matches!(
            Handle::try_current(),
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread
        );
        let run = || {
            let _entered = self.runtime.enter();
            futures::executor::block_on(fut)
        };
        if on_async_worker {
            tokio::task::block_in_place(run)
        } else {
            run()
        }
    }

    /// Spawns a background task on the backend's runtime.
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(fut)
    }

    /// Waits up to `within` for PostgreSQL to answer, trying every 250 ms.
    pub fn wait_reachable(&self, within: Duration) -> StoreResult<()> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let tried: StoreResult<()> = self.block(async {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            });
            match tried {
                Ok(()) => return Ok(()),
                Err(e) if e.is_unavailable() && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(e),
            }
        }
    }
}
