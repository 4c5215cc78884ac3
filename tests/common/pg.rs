//! The test process's PostgreSQL, for the `postgres` variant of every
//! integration test (and for the cluster and outage tests).
//!
//! API, kept small for other test files:
//! - [`server()`]: the server, or `None` when PostgreSQL is not on the
//!   machine (the test then prints `SKIPPED postgres tests (…)` and passes;
//!   with `INLET_REQUIRE_POSTGRES=1`, as `.ci/run` sets, it panics instead).
//! - [`Server::database_url_for`]: the database of one app's data dir,
//!   created on first use, so a restart on the same dir finds its data.
//! - [`Server::fresh_database_url`]: a new empty database.
//! - [`Server::stop`] / [`Server::start`]: take the throwaway cluster away
//!   and bring it back on the same port (the outage test).
//!
//! Which server: `INLET_TEST_DATABASE_URL` (`postgres://user@host:port/db`)
//! when set; else a throwaway cluster started once per test process with the
//! machine's `initdb`/`pg_ctl`, in a temp dir, on a free loopback port, with
//! trust auth and `fsync=off`. `fsync=off` is for test speed only: a crash of
//! the machine could corrupt that cluster, which is thrown away anyway; it is
//! never a setting for real data. The cluster is stopped and removed when the
//! test process exits.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Set by `.ci/run`: there a machine without PostgreSQL fails the postgres
/// variants instead of skipping them.
const REQUIRE: &str = "INLET_REQUIRE_POSTGRES";
const EXTERNAL: &str = "INLET_TEST_DATABASE_URL";
const INSTALL: &str = "install it with `apt-get install -y postgresql`";

/// One PostgreSQL server the tests may create databases on.
pub struct Server {
    /// `postgres://postgres@127.0.0.1:PORT` (no database part).
    base: String,
    /// The maintenance database to connect to for `CREATE DATABASE`.
    admin_database: String,
    /// Present for the throwaway cluster only (an external one is not ours
    /// to stop).
    cluster: Option<Cluster>,
}

/// The throwaway cluster: its directory, port, binaries and owner.
struct Cluster {
    dir: PathBuf,
    port: u16,
    bindir: PathBuf,
    /// Run the binaries through `runuser -u postgres --` (we are root).
    as_postgres: bool,
}

/// The server for this test process, or `None` (after printing
/// `SKIPPED postgres tests (…)`) when there is none; panics instead when
/// `INLET_REQUIRE_POSTGRES=1`.
pub fn server() -> Option<&'static Server> {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    match SERVER.get_or_init(find_or_start) {
        Ok(server) => Some(server),
        Err(reason) if required() => {
            panic!("postgres tests required ({REQUIRE}=1) but unavailable: {reason}")
        }
        Err(reason) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED postgres tests ({reason}; {INSTALL}, or set {EXTERNAL}; .ci/run installs it and requires them)"
            );
            None
        }
    }
}

fn required() -> bool {
    std::env::var(REQUIRE).is_ok_and(|v| v == "1")
}

fn find_or_start() -> Result<Server, String> {
    match std::env::var(EXTERNAL) {
        Ok(url) => external(&url),
        Err(_) => Cluster::start_throwaway().map(|cluster| Server {
            base: format!("postgres://postgres@127.0.0.1:{}", cluster.port),
            admin_database: "postgres".into(),
            cluster: Some(cluster),
        }),
    }
}

fn external(url: &str) -> Result<Server, String> {
    let Some((base, database)) = url.trim_end_matches('/').rsplit_once('/') else {
        return Err(format!("{EXTERNAL} has no database part: {url}"));
    };
    if !base.contains("://") {
        return Err(format!("{EXTERNAL} has no database part: {url}"));
    }
    Ok(Server {
        base: base.to_string(),
        admin_database: database.to_string(),
        cluster: None,
    })
}

impl Server {
    /// The database of the app whose data dir is `dir`: the same name for
    /// the same dir (so `TestApp::restart` reconnects to its data), created
    /// when missing.
    pub fn database_url_for(&self, dir: &Path) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        dir.hash(&mut hasher);
        let name = format!("inlet_test_{:016x}", hasher.finish());
        self.create_database(&name);
        self.url_of(&name)
    }

    /// A new, empty database (for tests that start `inlet` processes
    /// themselves, e.g. the cluster test).
    pub fn fresh_database_url(&self) -> String {
        let name = format!("inlet_test_{}", uuid::Uuid::new_v4().simple());
        self.create_database(&name);
        self.url_of(&name)
    }

    fn url_of(&self, database: &str) -> String {
        format!("{}/{database}", self.base)
    }

    /// `CREATE DATABASE` unless it exists. Runs on its own thread with its
    /// own runtime: callers are sync functions (`config_for`) that are
    /// themselves inside a test's runtime, where blocking on a future would
    /// panic.
    fn create_database(&self, name: &str) {
        let admin = self.url_of(&self.admin_database);
        let name = name.to_string();
        let created = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(create_if_missing(&admin, &name))
        })
        .join();
        match created {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("test database: {e}"),
            Err(_) => panic!("test database: the creating thread panicked"),
        }
    }

    /// Stops the throwaway cluster (fast shutdown: open connections are
    /// cut, as when the database goes away). Panics on an external server.
    pub fn stop(&self) {
        let cluster = self.own_cluster("stop");
        cluster.pg_ctl(&["stop", "-m", "fast", "-w"]);
    }

    /// Starts the throwaway cluster again on the same port and data.
    pub fn start(&self) {
        let cluster = self.own_cluster("start");
        cluster.start_server();
    }

    fn own_cluster(&self, what: &str) -> &Cluster {
        match &self.cluster {
            Some(cluster) => cluster,
            None => panic!("cannot {what} the external server {EXTERNAL} names"),
        }
    }

    /// Can this server be stopped and started (the outage test needs a
    /// throwaway cluster, not a shared one)?
    pub fn is_throwaway(&self) -> bool {
        self.cluster.is_some()
    }
}

async fn create_if_missing(admin: &str, name: &str) -> Result<(), String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .map_err(|e| format!("connect to {admin}: {e}"))?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    if exists.is_none() {
        // The name is ours (hex digits), so formatting it in is safe.
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
    }
    let _ = conn.close().await;
    Ok(())
}

impl Cluster {
    fn start_throwaway() -> Result<Cluster, String> {
        let bindir = find_bindir().ok_or("no initdb/pg_ctl on this machine")?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("inlet-pg-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?
            .keep();
        let cluster = Cluster {
            dir,
            port: super::process::free_port(),
            bindir,
            as_postgres,
        };
        stop_at_exit(&cluster);
        if as_postgres {
            chown_to_postgres(&cluster.dir)?;
        }
        cluster.init()?;
        cluster.start_server();
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn init(&self) -> Result<(), String> {
        let data = self.data();
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync"])
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(())
    }

    /// `pg_ctl start`, waiting until it takes connections. Sockets go in
    /// the cluster's dir (no need for /var/run/postgresql), TCP on loopback.
    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c full_page_writes=off -c max_connections=400",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        let log = log.to_string_lossy();
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log, "-o", &options]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(args)
            .stdout(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => panic!(
                "pg_ctl {args:?}: {other:?} (log: {})",
                self.dir.join("server.log").display()
            ),
        }
    }

    /// A PostgreSQL binary, run as the `postgres` user when we are root
    /// (PostgreSQL refuses to run as root).
    fn command(&self, binary: &str) -> Command {
        let path = self.bindir.join(binary);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }
}

/// Where `initdb` and `pg_ctl` are: `pg_config --bindir`, then `PATH`, then
/// Debian's `/usr/lib/postgresql/<version>/bin` (newest first).
fn find_bindir() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").exists() && dir.join("pg_ctl").exists();
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let from_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    debian.sort_by_key(|p| std::cmp::Reverse(debian_version(p)));
    from_pg_config
        .into_iter()
        .chain(from_path)
        .chain(debian)
        .find(|dir| has_both(dir))
}

fn debian_version(bin: &Path) -> u32 {
    bin.parent()
        .and_then(Path::file_name)
        .and_then(|v| v.to_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn chown_to_postgres(dir: &Path) -> Result<(), String> {
    let status = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(dir)
        .status()
        .map_err(|e| format!("chown: {e}"))?;
    if !status.success() {
        return Err("chown to the postgres user failed (is there a `postgres` user?)".into());
    }
    Ok(())
}

/// What the exit handler stops: the cluster's `pg_ctl` command line and dir.
static AT_EXIT: std::sync::Mutex<Option<(Command, PathBuf)>> = std::sync::Mutex::new(None);

/// Registers an `atexit` handler that stops the cluster (immediate mode:
/// nothing in it is worth a checkpoint) and removes its directory, as
/// `remove_at_exit` does for data dirs.
fn stop_at_exit(cluster: &Cluster) {
    let mut stop = cluster.command("pg_ctl");
    stop.arg("-D")
        .arg(cluster.data())
        .args(["stop", "-m", "immediate", "-w"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    *AT_EXIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((stop, cluster.dir.clone()));
    // SAFETY: `atexit` only records the function pointer; the handler is a
    // plain `extern "C" fn` that does not unwind.
    unsafe {
        libc::atexit(stop_cluster);
    }
}

extern "C" fn stop_cluster() {
    let taken = AT_EXIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some((mut stop, dir)) = taken {
        let _ = stop.status();
        let _ = std::fs::remove_dir_all(dir);
    }
}
