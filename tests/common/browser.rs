//! Headless Chromium for end-to-end tests and screenshots: starts Debian's
//! `chromedriver` on a free port, connects with fantoccini, and stops
//! chromedriver when dropped.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

const CHROMEDRIVER: &str = "chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A running chromedriver and a browser session on it.
pub struct Browser {
    pub client: Client,
    driver: DriverGuard,
}

/// Kills chromedriver (and so its Chromium) even when a test panics.
struct DriverGuard {
    child: Child,
    _profile: TempDir,
}

impl Drop for DriverGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Set by `.ci/run`: there a missing browser fails the test instead of
/// skipping it, so CI always runs the browser story.
const REQUIRE: &str = "INLET_REQUIRE_BROWSER";

const INSTALL: &str = "install them with `apt-get install -y chromium chromium-driver`";

impl Browser {
    /// Starts chromedriver and Chromium. When they are not installed, CI
    /// (`INLET_REQUIRE_BROWSER` set) fails with what to install; a plain
    /// `cargo test` on a machine without them says so and skips, so the
    /// two-command promise (`cargo test` passes on a fresh machine) holds.
    pub async fn start() -> Option<Browser> {
        let port = free_port();
        let spawned = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let missing = match (&spawned, std::path::Path::new(CHROMIUM).exists()) {
            (Err(e), _) => Some(format!("cannot start `{CHROMEDRIVER}` ({e})")),
            (Ok(_), false) => Some(format!("{CHROMIUM} is missing")),
            (Ok(_), true) => None,
        };
        if let Some(reason) = missing {
            if let Ok(mut child) = spawned {
                let _ = child.kill();
            }
            if std::env::var_os(REQUIRE).is_some() {
                panic!("{reason}; {INSTALL}");
            }
            // Written to the real stderr: the test harness captures `eprintln!`,
            // and a skip nobody sees would look like a pass.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED browser test: {reason}; {INSTALL} (.ci/run does, and requires it)"
            );
            return None;
        }
        let child = spawned.expect("checked above");
        let profile = TempDir::new().expect("profile dir");
        let driver = DriverGuard {
            child,
            _profile: profile,
        };
        let url = format!("http://127.0.0.1:{port}");
        let client = connect(&url, driver._profile.path()).await;
        Some(Browser { client, driver })
    }

    /// Ends the browser session, then chromedriver.
    pub async fn close(self) {
        let Browser { client, driver } = self;
        let _ = client.close().await;
        drop(driver);
    }
}

/// Connects once chromedriver answers (it takes a moment to listen).
async fn connect(url: &str, profile: &std::path::Path) -> Client {
    let caps = json!({"goog:chromeOptions": {"binary": CHROMIUM, "args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
        format!("--user-data-dir={}", profile.display()),
        "--window-size=1280,900",
    ]}});
    let caps = match caps {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    };
    let mut last_error = String::new();
    for _ in 0..100 {
        let builder = ClientBuilder::rustls().map(|mut b| {
            b.capabilities(caps.clone());
            b
        });
        match builder {
            Ok(b) => match b.connect(url).await {
                Ok(client) => return client,
                Err(e) => last_error = e.to_string(),
            },
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver at {url} did not accept a session within 10s: {last_error}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

// Steps every browser test takes, polling (never a fixed sleep).

/// Waits (polling, never a fixed sleep) until the element's text contains `needle`.
pub async fn wait_for_text(b: &Client, css: &str, needle: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(el) = b.find(Locator::Css(css)).await {
            last = el.text().await.unwrap_or_default();
            if last.contains(needle) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{css}` did not show `{needle}` within 10s; it shows: {last}");
}

pub async fn click(b: &Client, css: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

pub async fn wait_for(b: &Client, css: &str) -> fantoccini::elements::Element {
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("waiting for {css}: {e}"))
}

/// Logs in with the admin token from the home page and waits for the page
/// the login lands on.
pub async fn log_in(b: &Client, app: &super::TestApp) {
    b.goto(&app.url("/")).await.unwrap();
    assert!(b.current_url().await.unwrap().path().ends_with("/login"));
    b.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(super::ADMIN_TOKEN)
        .await
        .unwrap();
    click(b, "form button[type=submit]").await;
    // The navigation, not what `/` shows (the home page today), so a
    // story does not depend on the landing page.
    wait_for(b, "header nav").await;
}
