//! The real `inlet` binary as a child process: for tests that kill it
//! (`kill -9`), restart it, or watch its memory, which an in-process
//! server cannot show.

use reqwest::Client;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One running `inlet` on a data dir and a fixed loopback port.
pub struct InletProcess {
    pub base: String,
    pub client: Client,
    pub token: String,
    dir: PathBuf,
    port: u16,
    /// Extra environment (a PostgreSQL node's database and secret key).
    env: Vec<(String, String)>,
    child: Child,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl InletProcess {
    /// Starts the binary on `dir` and waits until `/healthz` answers.
    pub async fn start(dir: &Path, token: &str) -> InletProcess {
        InletProcess::start_with_env(dir, token, Vec::new()).await
    }

    /// As `start`, with extra environment (kept for restarts).
    pub async fn start_with_env(
        dir: &Path,
        token: &str,
        env: Vec<(String, String)>,
    ) -> InletProcess {
        let port = free_port();
        let child = spawn(dir, port, token, &env);
        let process = InletProcess {
            base: format!("http://127.0.0.1:{port}"),
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            token: token.to_string(),
            dir: dir.to_path_buf(),
            port,
            env,
            child,
        };
        process.wait_ready().await;
        process
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Polls `/healthz` until it answers 200; panics if the process exits
    /// or does not come up within 10 s.
    pub async fn wait_ready(&self) {
        for _ in 0..400 {
            if let Ok(r) = self.client.get(self.url("/healthz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("inlet did not come up on {}", self.base);
    }

    /// Is the process still running (it did not abort)?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// `kill -9`, then waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `kill -9` and start again on the same data dir and port.
    pub async fn restart(&mut self) {
        self.kill();
        self.start_again().await;
    }

    /// Starts the killed process again (same data dir, port, environment).
    pub async fn start_again(&mut self) {
        self.child = spawn(&self.dir, self.port, &self.token, &self.env);
        self.wait_ready().await;
    }

    /// An admin GET.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET")
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).await.json().await.expect("JSON")
    }

    /// An admin request with a JSON body.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("request")
    }
}

impl Drop for InletProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(dir: &Path, port: u16, token: &str, env: &[(String, String)]) -> Child {
    // `INLET_TEST_BINARY` runs a release build instead (worst-case timings
    // for docs/performance.md). `option_env!`: the examples share these
    // helpers, and only tests are given the binary's path.
    let Some(built) = option_env!("CARGO_BIN_EXE_inlet") else {
        panic!("the inlet binary's path is known to integration tests only");
    };
    let binary = std::env::var("INLET_TEST_BINARY").unwrap_or_else(|_| built.to_string());
    Command::new(binary)
        .arg("--data-dir")
        .arg(dir)
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .env("INLET_ADMIN_TOKEN", token)
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start inlet")
}
