//! Typed settings, loaded once at start: flags, then environment, then defaults.

use clap::Parser;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything Inlet can be told at start.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "inlet",
    version,
    about = "Identity-resolving webhook event pipeline"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "INLET_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Directory holding the sled database, the admin token and the lock file.
    #[arg(long, env = "INLET_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Admin token for the API and dashboard. Generated (and kept in the data
    /// dir) when unset. Never logged.
    #[arg(long, env = "INLET_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// Largest request body accepted at a hook, in bytes.
    #[arg(long, env = "INLET_MAX_BODY_BYTES", default_value_t = 5 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest number of records one request may explode into.
    #[arg(long, env = "INLET_MAX_RECORDS", default_value_t = 10_000)]
    pub max_records: usize,

    /// Most bytes one request's records may take, as a multiple of its body:
    /// CSV/TSV rows repeat the header names, so a small body can explode
    /// into far more (refused with 413 `explosion_too_large`, see
    /// docs/security.md). Each record also costs a fixed overhead.
    #[arg(long, env = "INLET_MAX_STORED_FACTOR", default_value_t = 16)]
    pub max_stored_factor: usize,

    /// Events kept (oldest processed ones are pruned beyond this).
    #[arg(long, env = "INLET_EVENT_RETENTION", default_value_t = 2_000_000)]
    pub event_retention: u64,

    /// Error-log entries kept.
    #[arg(long, env = "INLET_ERROR_RETENTION", default_value_t = 100_000)]
    pub error_retention: u64,

    /// sled page-cache size in MiB (sled's own default is 1 GiB). 32 holds
    /// the hot profiles of the load benchmark's 5,000 people: with 16 the
    /// committer read pages back from disk (5% of its CPU), and end to end
    /// rose 5% at 32 or 48 (measured A/B); peak RSS at a million events
    /// stays under 200 MiB (docs/performance.md).
    #[arg(long, env = "INLET_CACHE_MB", default_value_t = 32)]
    pub cache_mb: u64,

    /// Group commit: when writers arrive together and fewer than 32 wait,
    /// the flusher waits this many microseconds for more before it syncs
    /// (Postgres' `commit_delay`). 0 syncs at once. A lone writer never
    /// waits.
    #[arg(long, env = "INLET_COMMIT_DELAY_US", default_value_t = 200)]
    pub commit_delay_us: u64,

    /// Most events the processor takes per batch (it takes what is waiting,
    /// up to this). Default (also for 0): 128 embedded, 512 on PostgreSQL
    /// (see [`Config::batch`]).
    #[arg(long, env = "INLET_PROCESSOR_BATCH")]
    pub processor_batch: Option<usize>,

    /// Threads serving requests; default: one more than the machine has
    /// cores. The processor's and the group commit's threads preempt a
    /// worker now and then, and the spare one keeps requests moving
    /// meanwhile: on 2 cores 3 workers beat 2 in 9 of 12 A/B pairs (+1–4%).
    #[arg(long, env = "INLET_WORKERS")]
    pub workers: Option<usize>,

    /// Dashboard session lifetime in minutes.
    #[arg(long, env = "INLET_SESSION_MINUTES", default_value_t = 12 * 60)]
    pub session_minutes: i64,

    /// Seconds a client has to send a request's headers; the connection is
    /// closed after that. hyper starts this timer as soon as a connection
    /// waits for a request, so it also bounds how long an idle keep-alive
    /// connection stays open between requests.
    #[arg(long, env = "INLET_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,

    /// Seconds a client has to send a whole request body; past it the
    /// request is answered 408 `body_timeout` and the connection closed.
    #[arg(long, env = "INLET_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub body_timeout_secs: u64,

    /// Most connections served at once; one more is answered a short 503
    /// `too_many_connections` and closed, so file descriptors and memory
    /// stay bounded and a client learns why.
    #[arg(long, env = "INLET_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Failed admin-token attempts (API bearer or dashboard login) one client
    /// address may make per `auth_window_secs`; beyond it every attempt from
    /// that address, the right token included, is answered 429 until the
    /// window ends.
    #[arg(long, env = "INLET_AUTH_FAILURES_PER_ADDRESS", default_value_t = 10)]
    pub auth_failures_per_address: u32,

    /// Failed admin-token attempts from all addresses together per window;
    /// beyond it only addresses that presented the right token in the last
    /// 24 hours may try, so a spray of addresses is slowed too.
    #[arg(long, env = "INLET_AUTH_FAILURES_TOTAL", default_value_t = 100)]
    pub auth_failures_total: u32,

    /// The rate-limit window for failed admin-token attempts, in seconds.
    #[arg(long, env = "INLET_AUTH_WINDOW_SECS", default_value_t = 60)]
    pub auth_window_secs: u64,

    /// The key that encrypts sources' signing secrets at rest: 64 hex
    /// characters. When unset, `<data dir>/secret.key` is used, created
    /// (mode 0600) on the first start. Kept out of the database, so a copy
    /// of the database alone exposes no signing secret. Never logged.
    #[arg(long, env = "INLET_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<Secret>,

    /// PostgreSQL instead of the embedded store:
    /// `postgres://user:password@host:5432/inlet`. Every node given the
    /// same URL shares all state (docs/deploy.md). Never logged (it may
    /// hold a password).
    #[arg(long, env = "INLET_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// Most connections this node opens to PostgreSQL.
    #[arg(long, env = "INLET_DATABASE_CONNECTIONS", default_value_t = 16)]
    pub database_connections: u32,

    /// A one-off task instead of serving (`inlet migrate --to …`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// One-off tasks of the `inlet` binary.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Copies the embedded store in `--data-dir` into an empty PostgreSQL
    /// database (docs/deploy.md says what is copied). Stop the embedded
    /// node first.
    Migrate {
        /// The target: `postgres://user:password@host:5432/inlet`.
        #[arg(long, env = "INLET_MIGRATE_TO", hide_env_values = true)]
        to: Secret,
    },
}

/// A secret setting. `Config` derives `Debug`, and a config may end up in a
/// panic message or a debug log line: this prints `<redacted>` there, so
/// the secret is read only where it is used, through [`Secret::expose`].
/// Deliberately no `Display`: nothing formats it by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it (hashing the
    /// admin token at start).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What clap parses a flag or environment value into.
impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl Config {
    /// Most events per processor batch. Embedded, smaller batches keep each
    /// commit short, so the request path never waits long for a core: 128
    /// beat 512, 256 and 64 under load. On PostgreSQL a batch costs about
    /// fifteen round trips whatever its size, and at 128 the processor fell
    /// behind the hooks; 512 kept up (measured A/B, docs/performance.md).
    pub fn batch(&self) -> usize {
        let default = if self.database_url.is_some() {
            512
        } else {
            128
        };
        self.processor_batch.filter(|n| *n > 0).unwrap_or(default)
    }

    /// Request-serving threads (see `workers`).
    pub fn worker_threads(&self) -> usize {
        self.workers
            .filter(|n| *n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get() + 1))
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs.max(1))
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs.max(1))
    }

    /// Defaults for a given data dir, as tests and benches want them.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Config::parse_from(["inlet"]);
        config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.data_dir = data_dir.into();
        config.admin_token = None;
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debug_form_of_a_config_never_shows_the_admin_token() {
        let token = "a-very-secret-admin-token-0123456789";
        let mut config = Config::for_data_dir("/tmp/inlet-test");
        config.admin_token = Some(token.into());
        let shown = format!("{config:?}");
        assert!(!shown.contains(token), "{shown}");
        assert!(shown.contains("admin_token: Some(<redacted>)"), "{shown}");
        assert!(!format!("{config:#?}").contains(token));
    }

    #[test]
    fn the_processor_batch_defaults_by_backend_and_can_be_set() {
        let embedded = Config::parse_from(["inlet"]);
        assert_eq!(embedded.batch(), 128);
        let postgres = Config::parse_from(["inlet", "--database-url", "postgres://db/inlet"]);
        assert_eq!(postgres.batch(), 512);
        let set = Config::parse_from(["inlet", "--processor-batch", "64"]);
        assert_eq!(set.batch(), 64);
    }

    #[test]
    fn the_admin_token_is_read_from_the_flag_and_kept_whole() {
        let config = Config::parse_from(["inlet", "--admin-token", "flag-token-0123456789"]);
        let token = config.admin_token.as_ref().map(Secret::expose);
        assert_eq!(token, Some("flag-token-0123456789"));
    }
}
