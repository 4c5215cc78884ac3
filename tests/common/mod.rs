//! Shared helpers for integration tests: start the real server on port 0
//! with a temp data dir, and verbs the tests read like.
#![allow(dead_code)]

pub mod browser;
pub mod pg;
pub mod process;
pub mod raw;

use inlet::app::Application;
use inlet::config::Config;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub dir: PathBuf,
    /// The running server's state, for fixtures that need the store directly.
    pub state: inlet::http::AppState,
    /// Its store's backend, so `restart` reopens the same one.
    pub backend: Backend,
    _tempdir: Option<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

/// A source as created: its id and secret hook path.
pub struct TestSource {
    pub id: String,
    pub hook: String,
    pub body: Value,
}

/// Which store a test's apps use. Each test written inside
/// [`backend_tests!`] runs once per backend; everything else is embedded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Postgres,
}

tokio::task_local! {
    /// The backend of the running test variant. A task-local (not a global)
    /// because the variants of many tests run at once in one process; read
    /// with a default so tests outside `backend_tests!` stay embedded. Tasks
    /// a test spawns do not inherit it: start apps from the test's own task.
    static BACKEND: Backend;
}

/// The backend of the test variant running on this task.
pub fn backend() -> Backend {
    BACKEND.try_with(|b| *b).unwrap_or(Backend::Embedded)
}

/// Runs a test body with its apps on `backend`. The postgres variant
/// returns at once (a pass, after `SKIPPED postgres tests`) when there is no
/// PostgreSQL, or panics when `INLET_REQUIRE_POSTGRES=1`.
pub async fn on_backend(backend: Backend, body: impl std::future::Future<Output = ()>) {
    if backend == Backend::Postgres && pg::server().is_none() {
        return;
    }
    BACKEND.scope(backend, body).await
}

/// Turns each test into a module with two tests, `embedded` and
/// `postgres`, that run the same body with the same attributes (flavor,
/// `ignore`, docs), e.g. `cargo test --test ingest -- a_hook::postgres`.
#[macro_export]
macro_rules! backend_tests {
    ($( $(#[$meta:meta])* async fn $name:ident() $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                $(#[$meta])*
                async fn embedded() {
                    $crate::common::on_backend($crate::common::Backend::Embedded, async $body).await
                }

                $(#[$meta])*
                async fn postgres() {
                    $crate::common::on_backend($crate::common::Backend::Postgres, async $body).await
                }
            }
        )*
    };
}

/// An app's config on the running test's backend: its data dir, the test
/// admin token and, for the postgres variant, the database that belongs to
/// that data dir (the same one again after a restart).
pub fn config_for(dir: &Path) -> Config {
    config_on(backend(), dir)
}

pub fn config_on(backend: Backend, dir: &Path) -> Config {
    let mut config = Config::for_data_dir(dir);
    config.admin_token = Some(ADMIN_TOKEN.into());
    if backend == Backend::Postgres {
        let Some(server) = pg::server() else {
            panic!("a postgres test variant ran without PostgreSQL (see on_backend)");
        };
        config.database_url = Some(server.database_url_for(dir).into());
        // Many apps share one server while tests run in parallel; a small
        // pool each keeps them under its max_connections.
        config.database_connections = 6;
    }
    config
}

pub async fn spawn_app() -> TestApp {
    let tempdir = TempDir::new().expect("temp dir");
    let dir = tempdir.path().to_path_buf();
    let mut app = spawn_with(config_for(&dir)).await;
    app._tempdir = Some(tempdir);
    app
}

/// Starts the app on a temp data dir after letting the test adjust the config
/// (e.g. a small `max_records`).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let tempdir = TempDir::new().expect("temp dir");
    let dir = tempdir.path().to_path_buf();
    let mut config = config_for(&dir);
    adjust(&mut config);
    let mut app = spawn_with(config).await;
    app._tempdir = Some(tempdir);
    app
}

pub async fn spawn_with(config: Config) -> TestApp {
    let dir = config.data_dir.clone();
    let backend = match config.database_url {
        Some(_) => Backend::Postgres,
        None => Backend::Embedded,
    };
    let app = Application::build(config).await.expect("server starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let _ = app
            .run_until(async {
                let _ = stopped.await;
            })
            .await;
    });
    TestApp {
        base,
        client: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .expect("client"),
        dir,
        state,
        backend,
        _tempdir: None,
        stop: Some(stop),
        handle: Some(handle),
    }
}

/// A test that ends without `shutdown` leaves its server's background
/// threads (the committer, sled's flusher) holding the store after the
/// test is over. Its data dir must outlive them: deleting it under them made
/// sled wait for ever for a write it could not finish (seen as a test that
/// hung at 0 % CPU in a committer's final flush, with every other server of
/// the process waiting behind it). So data dirs are removed when the test
/// process exits, not when the test ends.
impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tempdir) = self._tempdir.take() {
            remove_at_exit(tempdir.keep());
        }
    }
}

static DATA_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn remove_at_exit(dir: PathBuf) {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: `atexit` only records the function pointer; the handler
        // is a plain `extern "C" fn` that does not unwind.
        unsafe {
            libc::atexit(remove_data_dirs);
        }
    });
    DATA_DIRS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(dir);
}

extern "C" fn remove_data_dirs() {
    let dirs = std::mem::take(
        &mut *DATA_DIRS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

impl TestApp {
    /// Stops the server gracefully and starts it again on the same data dir.
    pub async fn restart(mut self) -> TestApp {
        self.shutdown().await;
        let tempdir = self._tempdir.take();
        let dir = self.dir.clone();
        let backend = self.backend;
        // Drop the old state (it holds the store) before reopening the data dir.
        drop(self);
        let mut app = spawn_with(config_on(backend, &dir)).await;
        app._tempdir = tempdir;
        app
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn api_get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request")
    }

    pub async fn api_json(&self, path: &str) -> Value {
        let response = self.api_get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("json")
    }

    pub async fn api_send(&self, method: reqwest::Method, path: &str, body: Value) -> Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn create_source(&self, body: Value) -> TestSource {
        let response = self
            .api_send(reqwest::Method::POST, "/api/sources", body)
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
        TestSource {
            id: body["id"].as_str().expect("id").to_string(),
            hook: body["webhook_path"].as_str().expect("path").to_string(),
            body,
        }
    }

    pub async fn source_named(&self, name: &str) -> TestSource {
        self.create_source(json!({ "name": name })).await
    }

    /// POSTs a JSON body to a hook.
    pub async fn send(&self, hook: &str, body: &Value) -> Response {
        self.client
            .post(self.url(hook))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// POSTs raw bytes with a content type to a hook.
    pub async fn send_raw(
        &self,
        hook: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.client
            .post(self.url(hook))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// Sends and insists on a 202; returns the accepted event ids.
    pub async fn send_ok(&self, hook: &str, body: &Value) -> Vec<String> {
        let response = self.send(hook, body).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.expect("json");
        ids_of(&body)
    }

    pub async fn event(&self, id: &str) -> Value {
        self.api_json(&format!("/api/events/{id}")).await
    }

    /// Waits until the processor has handled an event (status not pending).
    pub async fn processed_event(&self, id: &str) -> Value {
        for _ in 0..200 {
            let event = self.event(id).await;
            if event["status"] != "pending" {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("event {id} was not processed within 5s");
    }

    pub async fn errors(&self, query: &str) -> Vec<Value> {
        let body = self.api_json(&format!("/api/errors?{query}")).await;
        body["errors"].as_array().expect("errors").clone()
    }

    /// Saves a mapping (or `{"preset": ...}`) and insists on a 200; returns the saved version.
    pub async fn put_mapping(&self, source: &TestSource, mapping: Value) -> Value {
        let response = self.try_put_mapping(source, mapping).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, StatusCode::OK, "PUT mapping: {body}");
        body
    }

    pub async fn try_put_mapping(&self, source: &TestSource, mapping: Value) -> Response {
        self.api_send(
            reqwest::Method::PUT,
            &format!("/api/sources/{}/mapping", source.id),
            mapping,
        )
        .await
    }

    /// A source created with a mapping already saved.
    pub async fn mapped_source(&self, name: &str, mapping: Value) -> TestSource {
        let source = self.source_named(name).await;
        self.put_mapping(&source, mapping).await;
        source
    }

    /// Sends one record and waits until the processor has handled it.
    pub async fn send_processed(&self, hook: &str, body: &Value) -> Value {
        let ids = self.send_ok(hook, body).await;
        assert_eq!(ids.len(), 1, "one record expected");
        self.processed_event(&ids[0]).await
    }

    /// Waits until an event has a given status (e.g. after a replay).
    pub async fn wait_for_status(&self, id: &str, status: &str) -> Value {
        let mut event = Value::Null;
        for _ in 0..200 {
            event = self.event(id).await;
            if event["status"] == status {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("event {id} did not become {status} within 5s: {event}");
    }

    /// Waits until an event has been resolved to a profile.
    pub async fn wait_until_resolved(&self, id: &str) -> Value {
        self.wait_for_status(id, "resolved").await
    }

    /// Waits until the source's replay job has finished; returns the source view.
    pub async fn wait_for_replay(&self, source: &TestSource) -> Value {
        let mut body = Value::Null;
        for _ in 0..200 {
            body = self.api_json(&format!("/api/sources/{}", source.id)).await;
            if !body["replay"]["finished_at"].is_null() {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "replay of source {} did not finish within 5s: {body}",
            source.id
        );
    }

    pub async fn replay(&self, source: &TestSource, status: &str) -> Response {
        self.api_send(
            reqwest::Method::POST,
            &format!("/api/sources/{}/replay", source.id),
            json!({ "status": status }),
        )
        .await
    }

    pub async fn preview(&self, source: &TestSource, body: Value) -> Value {
        let response = self
            .api_send(
                reqwest::Method::POST,
                &format!("/api/sources/{}/mapping/preview", source.id),
                body,
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, StatusCode::OK, "preview: {body}");
        body
    }

    /// Looks a profile up by one identifier (`email`, `external_id`, `visitor_id`).
    pub async fn try_profile_by(&self, kind: &str, value: &str) -> Response {
        let url = reqwest::Url::parse_with_params(&self.url("/api/profiles"), &[(kind, value)])
            .expect("url");
        self.client
            .get(url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request")
    }

    pub async fn profile_by(&self, kind: &str, value: &str) -> Value {
        let response = self.try_profile_by(kind, value).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "profile by {kind}={value}"
        );
        response.json().await.expect("json")
    }

    pub async fn profile_by_email(&self, email: &str) -> Value {
        self.profile_by("email", email).await
    }

    pub async fn profile(&self, id: &str) -> Value {
        self.api_json(&format!("/api/profiles/{id}")).await
    }

    pub async fn profile_events(&self, id: &str) -> Vec<Value> {
        let body = self.api_json(&format!("/api/profiles/{id}/events")).await;
        body["events"].as_array().expect("events").clone()
    }

    pub async fn profile_history(&self, id: &str) -> Vec<Value> {
        let body = self.api_json(&format!("/api/profiles/{id}/history")).await;
        body["history"].as_array().expect("history").clone()
    }

    /// Every event of a source (newest first).
    pub async fn source_events(&self, source: &TestSource) -> Vec<Value> {
        let body = self
            .api_json(&format!("/api/events?source_id={}&limit=500", source.id))
            .await;
        body["events"].as_array().expect("events").clone()
    }

    /// Error-log entries of a source at one stage.
    pub async fn errors_at(&self, source: &TestSource, stage: &str) -> Vec<Value> {
        self.errors(&format!("source_id={}&stage={stage}", source.id))
            .await
    }
}

pub fn ids_of(body: &Value) -> Vec<String> {
    body["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect()
}

/// The body of an error answer, asserting its shape.
pub async fn error_of(response: Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("json error body");
    body["error"].as_str().expect("error message").to_string()
}

/// Dashboard verbs: the client's cookie store carries the session.
impl TestApp {
    /// Logs in through the form; returns the 303 answer (with its cookie).
    pub async fn login(&self) -> Response {
        let response = self.post_form("/login", &[("token", ADMIN_TOKEN)]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "login");
        response
    }

    /// GETs a page; returns status and HTML.
    pub async fn page(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.text().await.expect("html"))
    }

    /// The CSRF token from a page's forms.
    pub async fn csrf(&self, path: &str) -> String {
        let (_, html) = self.page(path).await;
        csrf_in(&html).expect("a csrf field on the page")
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .expect("request")
    }
}

/// The value of the hidden `csrf` field in a page.
pub fn csrf_in(html: &str) -> Option<String> {
    let start = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

/// The webhook URL shown once on a source page, if any.
pub fn webhook_url_in(html: &str) -> Option<String> {
    let start = html.find("id=\"webhook-url\"")?;
    let rest = &html[start..];
    let value = rest.find("value=\"")? + "value=\"".len();
    let end = rest[value..].find('"')? + value;
    Some(rest[value..end].to_string())
}

/// The identity stories' mapping: all three built-in identifiers, a trait
/// and a time (`tests/identity_api.rs`, `tests/identity_split.rs`).
pub fn people_mapping() -> Value {
    json!({
        "event_name": "{{type}}",
        "visitor_id": "{{anon}}",
        "email": "{{email}}",
        "external_id": "{{user}}",
        "traits": {"plan": "{{plan}}"},
        "timestamp": "{{ts}}"
    })
}

/// A source mapped with [`people_mapping`].
pub async fn people_source(app: &TestApp) -> TestSource {
    app.mapped_source("Web", people_mapping()).await
}
