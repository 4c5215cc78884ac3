//! The `inlet` binary: load config, set up tracing, run the server.

use clap::Parser;
use inlet::app::Application;
use inlet::config::Config;
use tracing_subscriber::EnvFilter;

/// glibc gives every thread that allocates its own arena; with tokio's
/// workers, the blocking pool and sled's IO threads that multiplies the
/// resident size by fragmentation (measured: 266 → 213 MiB at 350k events).
/// Four arenas, one per thread that allocates on the hot path (two tokio
/// workers, the planner, the committer), keep RSS bounded (163 MiB at 613k
/// events) without the lock contention two arenas caused: with two, those
/// threads queued on arena locks and end-to-end throughput fell by a
/// fifth (measured A/B, docs/performance.md).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

fn config_host(app: &Application) -> String {
    app.state().config.addr.ip().to_string()
}

fn main() {
    limit_malloc_arenas();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("inlet: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(serve());
}

async fn serve() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sled=warn")),
        )
        .init();
    let config = Config::parse();
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("inlet: {e}");
            std::process::exit(1);
        }
    };
    tracing::info!(
        "listening on http://{}:{} (dashboard at /, API under /api, hooks under /hooks)",
        config_host(&app),
        app.port()
    );
    if let Err(e) = app.run().await {
        eprintln!("inlet: {e}");
        std::process::exit(1);
    }
}
