//! Building and running the server: `Application::build` opens the data dir,
//! restores in-memory state, starts the flusher and the processor, and binds
//! the listener, so `main` and tests start Inlet the same way.

use crate::config::Config;
use crate::domain::activity::Activity;
use crate::domain::counters::Counters;
use crate::domain::sealed::SecretKey;
use crate::domain::source::SecretHash;
use crate::http::dashboard::Sessions;
use crate::http::{AppState, Shared};
use crate::metrics::Metrics;
use crate::pipeline::{PipelineConfig, PipelineHandles, Processor};
use crate::service::{Handles, Services};
use crate::store::StateStore;
use crate::store::Store;
use fs4::fs_std::FileExt;
use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Why Inlet could not start; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("data dir {0} is in use by another Inlet process (lock file {0}/inlet.lock); stop it or pick another --data-dir")]
    Locked(String),
    #[error("cannot open the database in {path}: {source}")]
    Store {
        path: String,
        source: crate::store::StoreError,
    },
    #[error("the signing-secret key (INLET_SECRET_KEY or the data dir's secret.key): {0}")]
    SecretKey(String),
    #[error("cannot read or write the admin token file: {0}")]
    AdminToken(std::io::Error),
    #[error("the admin token (INLET_ADMIN_TOKEN or the data dir's admin_token file) has {len} characters; it must have at least {MIN_ADMIN_TOKEN_CHARS}: make one with `openssl rand -hex 32`, or unset it and remove the file to have Inlet generate one")]
    WeakAdminToken { len: usize },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The shortest admin token accepted: a short one can be guessed, rate limit
/// or not. 24 characters of hex are 96 bits; generated tokens have 256.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 24;

/// A built server: bound, with its background tasks running.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// The data dir's lock (embedded backend only: PostgreSQL nodes keep
    /// nothing on disk, so several may run from one directory).
    _lock: Option<File>,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        owner_only_new_files();
        let lock = config
            .database_url
            .is_none()
            .then(|| lock_data_dir(&config.data_dir))
            .transpose()?;
        let secret_key = load_secret_key(&config)?;
        let store = open_store(&config)?;
        // On PostgreSQL the token and the key are what every node shares.
        let admin_token = match &store {
            Store::Embedded(_) => SecretHash::of(load_admin_token(&config)?.as_bytes()),
            Store::Postgres(_) => {
                check_shared_key(&store, &secret_key)?;
                share_admin_token(&config, &store)?
            }
        };
        let secret_key = Arc::new(secret_key);
        let counters = restore_counters(&store).map_err(|source| StartError::Store {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let commit =
            store.start_group_commit(std::time::Duration::from_micros(config.commit_delay_us));
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.addr,
                source,
            })?;
        let auth_guard = crate::http::guard::AuthGuard::from_config(&config);
        let config = Arc::new(config);
        let new_events = Arc::new(Notify::new());
        // Other nodes' appends wake this node's processor too (PostgreSQL).
        store.subscribe_changes(new_events.clone());
        let counters = Arc::new(counters);
        let metrics = Arc::new(Metrics::new());
        // The pipeline gets its own handles and the few settings it reads,
        // not the application state.
        let processor = Arc::new(
            Processor::new(PipelineHandles {
                store: store.clone(),
                counters: counters.clone(),
                new_events: new_events.clone(),
                metrics: metrics.clone(),
                config: PipelineConfig::from(config.as_ref()),
            })
            .map_err(|source| StartError::Store {
                path: config.data_dir.display().to_string(),
                source,
            })?,
        );
        let store_for_sessions = store.clone();
        let services = Services::new(Handles {
            config: config.clone(),
            store,
            commit,
            counters,
            new_events,
            processor,
            secret_key: secret_key.clone(),
            rate_limits: Default::default(),
            kinds_writer: Default::default(),
        });
        let state = AppState::new(Shared {
            services,
            config,
            admin_token: Arc::new(admin_token),
            sessions: Arc::new(Sessions::new(store_for_sessions, secret_key)),
            metrics,
            auth_guard,
        });
        Ok(Self {
            listener,
            state,
            _lock: lock,
        })
    }

    /// The port actually bound (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests,
    /// lets the processor finish its batch, and flushes.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let pipeline = state.services.processor.clone();
        let processor = tokio::spawn(crate::pipeline::run(pipeline.clone()));
        let router = crate::http::app(state.clone());
        let limits = crate::http::serve::EdgeLimits::from_config(&state.config);
        let served = crate::http::serve::serve(self.listener, router, limits, shutdown).await;
        // Wakes the pipeline too, so it stops after the batch in hand.
        pipeline.stop();
        let _ = processor.await;
        let (commit, store) = (state.services.commit.clone(), state.services.store.clone());
        let _ = tokio::task::spawn_blocking(move || {
            commit.stop();
            if let Err(e) = store.close() {
                tracing::error!(error = %e, "final flush failed; the processor redoes its last work at the next start");
            }
        })
        .await;
        tracing::info!("stopped");
        served
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}

/// The backend the config names: PostgreSQL when `database_url` is set
/// (the pool is opened on a blocking thread: it waits for the database),
/// else the embedded store in the data dir.
fn open_store(config: &Config) -> Result<Store, StartError> {
    match &config.database_url {
        Some(url) => {
            let mut options = crate::store::PgOptions::new(url.expose());
            options.max_connections = config.database_connections.max(2);
            Store::connect(&options).map_err(|source| StartError::Store {
                path: "the PostgreSQL database (INLET_DATABASE_URL)".into(),
                source,
            })
        }
        None => {
            Store::open(&config.data_dir, config.cache_mb).map_err(|source| StartError::Store {
                path: config.data_dir.display().to_string(),
                source,
            })
        }
    }
}

/// Takes an exclusive lock on `<data dir>/inlet.lock`, so a second process
/// fails fast with a clear message instead of sled's opaque one.
fn lock_data_dir(dir: &Path) -> Result<File, StartError> {
    std::fs::create_dir_all(dir).map_err(|source| StartError::DataDir {
        path: dir.display().to_string(),
        source,
    })?;
    owner_only_existing(dir).map_err(|source| StartError::DataDir {
        path: dir.display().to_string(),
        source,
    })?;
    let file = File::create(dir.join("inlet.lock")).map_err(|source| StartError::DataDir {
        path: dir.display().to_string(),
        source,
    })?;
    match file.try_lock_exclusive() {
        Ok(true) => Ok(file),
        _ => Err(StartError::Locked(dir.display().to_string())),
    }
}

/// The admin token: from the config, else from `<data dir>/admin_token`,
/// else generated, saved (mode 0600) and printed once.
fn load_admin_token(config: &Config) -> Result<String, StartError> {
    let configured = config.admin_token.as_ref().map(|t| t.expose());
    if let Some(token) = configured.filter(|t| !t.is_empty()) {
        return strong_enough(token.to_owned());
    }
    let path = config.data_dir.join("admin_token");
    match std::fs::read_to_string(&path) {
        Ok(token) => {
            let token = token.trim().to_string();
            if !token.is_empty() {
                return strong_enough(token);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // A file that is there but cannot be read (permissions, not UTF-8)
        // holds the operator's token: replacing it with a generated one
        // would lock them out, so say so and stop.
        Err(e) => return Err(StartError::AdminToken(e)),
    }
    let token = crate::domain::source::new_token();
    write_private(&path, &token).map_err(StartError::AdminToken)?;
    // Printed once, on the first start, so a first run needs no setup; later
    // starts read it from the file and never print it again.
    tracing::warn!(
        "generated an admin token (kept in {}): {token}",
        path.display()
    );
    Ok(token)
}

/// The key sealing signing secrets: from the config, else from
/// `<data dir>/secret.key`, else generated and saved there (mode 0600).
/// Never printed: unlike the admin token, no one needs to type it.
fn load_secret_key(config: &Config) -> Result<SecretKey, StartError> {
    let bad = |e: crate::domain::sealed::BadKey| StartError::SecretKey(e.to_string());
    if let Some(key) = config
        .secret_key
        .as_ref()
        .filter(|k| !k.expose().is_empty())
    {
        return SecretKey::parse(key.expose()).map_err(bad);
    }
    let path = config.data_dir.join("secret.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => return SecretKey::parse(&text).map_err(bad),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // Replacing an unreadable key would make every sealed secret
        // unreadable: stop and say so.
        Err(e) => return Err(StartError::SecretKey(format!("{}: {e}", path.display()))),
    }
    let key = SecretKey::generate();
    write_private(&path, &key.encode())
        .map_err(|e| StartError::SecretKey(format!("{}: {e}", path.display())))?;
    Ok(key)
}

/// The admin token's hash on PostgreSQL, where every node must accept the
/// same token: a configured token (`INLET_ADMIN_TOKEN`) wins and is stored
/// for the nodes without one; else the first node that finds none stores
/// a generated one (`ON CONFLICT DO NOTHING`) and prints it, and every
/// other node uses the stored hash (its own token is never printed).
fn share_admin_token(config: &Config, store: &Store) -> Result<SecretHash, StartError> {
    let failed = |source| StartError::Store {
        path: "the PostgreSQL database (INLET_DATABASE_URL)".into(),
        source,
    };
    let configured = config.admin_token.as_ref().map(|t| t.expose());
    if let Some(token) = configured.filter(|t| !t.is_empty()) {
        let hash = SecretHash::of(strong_enough(token.to_owned())?.as_bytes());
        return Ok(store.share_admin_token(&hash, true).map_err(failed)?.value);
    }
    let token = crate::domain::source::new_token();
    let shared = store
        .share_admin_token(&SecretHash::of(token.as_bytes()), false)
        .map_err(failed)?;
    if shared.ours {
        // Only its hash is in the database: this line is the one place
        // the token is ever shown.
        tracing::warn!(
            "generated an admin token (every node on this database accepts it; set INLET_ADMIN_TOKEN to choose your own): {token}"
        );
    }
    Ok(shared.value)
}

/// What a canary of the secret key holds (its content does not matter:
/// only whether it opens).
const KEY_CANARY: &[u8] = b"inlet secret key canary";

/// On PostgreSQL every node must seal and open signing secrets with one
/// key: the first node stores a canary sealed with its key, and a node
/// whose key does not open it refuses to start (it could read no secret
/// the others set, and would set ones they cannot read).
fn check_shared_key(store: &Store, key: &SecretKey) -> Result<(), StartError> {
    let canary_source = crate::domain::ids::SourceId(uuid::Uuid::nil());
    let sealed = key
        .seal(canary_source, KEY_CANARY, chrono::Utc::now())
        .map_err(|e| StartError::SecretKey(e.to_string()))?;
    let shared = store
        .share_key_canary(&sealed)
        .map_err(|source| StartError::Store {
            path: "the PostgreSQL database (INLET_DATABASE_URL)".into(),
            source,
        })?;
    if key.open(canary_source, &shared.value).is_err() {
        return Err(StartError::SecretKey(
            "this node's key is not the one the other nodes on this PostgreSQL database use; every node must share one key: set INLET_SECRET_KEY to the same 64 hex characters on every node (the first node's key is in its data dir's secret.key file)".into(),
        ));
    }
    Ok(())
}

/// Refuses a token short enough to guess (counted in characters, as a
/// person counts them).
fn strong_enough(token: String) -> Result<String, StartError> {
    let len = token.chars().count();
    if len < MIN_ADMIN_TOKEN_CHARS {
        return Err(StartError::WeakAdminToken { len });
    }
    Ok(token)
}

/// Files and folders Inlet creates from now on (sled's, the event log's,
/// the lock and token files) are the owner's only: the umask is process
/// wide, and the data dir holds personal data. Set at every build (tests
/// build many apps; the value is the same).
fn owner_only_new_files() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-mode mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// A data dir made by an older Inlet (or by hand) keeps files readable by
/// group and others: take those bits away from the dir and everything in
/// it. Symlinks are left alone (their target is not ours to change).
fn owner_only_existing(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut pending = vec![dir.to_path_buf()];
        while let Some(path) = pending.pop() {
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.file_type().is_symlink() {
                continue;
            }
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & !0o077))?;
            }
            if meta.is_dir() {
                for entry in std::fs::read_dir(&path)? {
                    pending.push(entry?.path());
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

fn restore_counters(store: &Store) -> Result<Counters, crate::store::StoreError> {
    let activity = Activity::restore(store.persisted_activity()?);
    let (counts, pending) = store.counts_with_pending()?;
    Ok(Counters::restore(counts, pending)
        .with_activity(activity)
        .with_old_tokens(store.old_token_uses()?))
}

/// Dependencies whose debug and trace logs carry values Inlet handles
/// (handlebars logs the data it renders: payload values, and the CSRF token
/// of dashboard pages); they are capped at `warn` whatever `RUST_LOG` says.
const CAPPED_TARGETS: [&str; 2] = ["handlebars", "sled"];

/// The log filter: `RUST_LOG` (or `info`), with [`CAPPED_TARGETS`] at `warn`.
/// The caps are added last, so they replace a `RUST_LOG` directive for the
/// same target, and are more specific than a bare level such as `trace`.
pub fn log_filter(rust_log: Option<&str>) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    let base = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    let mut filter = EnvFilter::try_new(base).unwrap_or_else(|_| EnvFilter::new("info"));
    for target in CAPPED_TARGETS {
        if let Ok(cap) = format!("{target}=warn").parse() {
            filter = filter.add_directive(cap);
        }
    }
    filter
}

#[cfg(test)]
mod admin_token_tests {
    use super::{load_admin_token, StartError};
    use crate::config::Config;

    #[test]
    fn an_unreadable_admin_token_file_stops_the_start_instead_of_being_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("admin_token");
        std::fs::write(&path, [0xff, 0xfe, 0x00]).expect("write");
        let result = load_admin_token(&Config::for_data_dir(dir.path()));
        assert!(
            matches!(result, Err(StartError::AdminToken(_))),
            "{result:?}"
        );
        assert_eq!(std::fs::read(&path).expect("read"), [0xff, 0xfe, 0x00]);
    }

    #[test]
    fn the_configured_admin_token_wins_over_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("admin_token"),
            "file-token-0123456789abcdef",
        )
        .expect("write");
        let mut config = Config::for_data_dir(dir.path());
        config.admin_token = Some("flag-token-0123456789abcdef".into());
        let token = load_admin_token(&config).expect("token");
        assert_eq!(token, "flag-token-0123456789abcdef");
    }
}

#[cfg(test)]
mod log_filter_tests {
    use super::log_filter;
    use std::sync::{Arc, Mutex};

    /// Everything a subscriber with `log_filter(rust_log)` writes while `f` runs.
    fn captured(rust_log: &str, f: impl FnOnce()) -> String {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let buf = buf.clone();
            move || Capture(buf.clone())
        };
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(log_filter(Some(rust_log)))
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut buf) = self.0.lock() {
                buf.extend_from_slice(b);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn handlebars_debug_logs_are_dropped_whatever_rust_log_says() {
        for rust_log in [
            "debug",
            "trace",
            "handlebars=trace",
            "debug,handlebars=debug",
        ] {
            let out = captured(rust_log, || {
                tracing::debug!(target: "handlebars::render", "rendering secret-csrf-token");
                tracing::trace!(target: "handlebars", "value secret-payload");
                tracing::debug!(target: "inlet::pipeline", "inlet's own debug line");
            });
            assert!(!out.contains("secret"), "{rust_log}: {out}");
            let global = !rust_log.starts_with("handlebars");
            assert_eq!(
                out.contains("inlet's own debug line"),
                global,
                "{rust_log}: {out}"
            );
        }
        let out = captured("debug", || {
            tracing::warn!(target: "handlebars::render", "a handlebars warning");
        });
        assert!(out.contains("a handlebars warning"));
    }
}
