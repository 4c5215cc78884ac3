//! The `inlet` binary: load config, set up tracing, run the server.

use clap::Parser;
use inlet::app::Application;
use inlet::config::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
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
    tracing::info!(port = app.port(), "listening");
    if let Err(e) = app.run().await {
        eprintln!("inlet: {e}");
        std::process::exit(1);
    }
}
