//! The `inlet` binary: load config, set up tracing, run the server.

use clap::Parser;
use inlet::app::{log_filter, Application};
use inlet::config::{Command, Config};

fn config_host(app: &Application) -> String {
    app.state().config.addr.ip().to_string()
}

/// jemalloc instead of glibc's malloc. Inlet allocates on one thread and
/// frees on another all the time (the request path decodes an event, the
/// processor drops it; sled's pages move between its threads), which glibc
/// pays for with arena locks and `malloc_consolidate`: malloc and free were
/// a sixth of all CPU under load. Measured A/B (docs/performance.md): end
/// to end +15% median over 4 alternating pairs, and peak RSS at a million
/// events 172 MiB against glibc's 178 MiB (mimalloc was fast too but went
/// over 256 MiB). The reference server runs equally fast on either.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let config = Config::parse();
    if let Some(Command::Migrate { to }) = &config.command {
        std::process::exit(migrate(&config, to.expose()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads())
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("inlet: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(serve(config));
}

/// `inlet migrate --to postgres://…`: the exit code.
fn migrate(config: &Config, to: &str) -> i32 {
    let mut options = inlet::store::PgOptions::new(to);
    options.max_connections = 4;
    let copied = inlet::store::migrate::embedded_to_postgres(
        &config.data_dir,
        config.cache_mb,
        &options,
        |events| eprint!("\rinlet: {events} events copied"),
    );
    match copied {
        Ok(report) => {
            eprintln!(
                "\ninlet: copied {} sources, {} mapping versions and {} events; start nodes with INLET_DATABASE_URL and the same secret key (the data dir's secret.key, as INLET_SECRET_KEY); they process the events again",
                report.sources, report.mapping_versions, report.events
            );
            0
        }
        Err(e) => {
            eprintln!("\ninlet: migration failed: {e}");
            1
        }
    }
}

async fn serve(config: Config) {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("RUST_LOG").ok().as_deref()))
        .init();
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
