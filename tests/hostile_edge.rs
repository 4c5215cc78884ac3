//! Hostile clients at the edge of the server (issue 14): slow or silent
//! connections, too many connections, token guessing, a weak admin token,
//! and who may read the data dir. Each drives the real server over TCP.

mod common;

use common::raw::connect;
use common::{config_for, spawn_app_with, ADMIN_TOKEN};
use inlet::app::Application;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Long enough for a 1 s server timeout to fire on a loaded 2-core machine;
/// a connection the server never closes fails the test here.
const CLOSE_WITHIN: Duration = Duration::from_secs(8);

async fn read_until_closed(stream: &mut TcpStream) -> String {
    common::raw::read_until_closed(stream, CLOSE_WITHIN).await
}

backend_tests! {
    #[tokio::test]
    async fn half_sent_headers_are_closed_after_the_header_timeout() {
        let app = spawn_app_with(|c| c.header_timeout_secs = 1).await;
        let mut stream = connect(&app.base).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: inlet\r\nX-Slow: ")
            .await
            .expect("write");
        let answer = read_until_closed(&mut stream).await;
        assert!(
            !answer.contains("200 OK"),
            "no request was completed: {answer}"
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_connection_that_sends_nothing_is_closed() {
        let app = spawn_app_with(|c| c.header_timeout_secs = 1).await;
        let mut stream = connect(&app.base).await;
        read_until_closed(&mut stream).await;
    }
}

backend_tests! {
    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed() {
        let app = spawn_app_with(|c| c.header_timeout_secs = 1).await;
        let mut stream = connect(&app.base).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: inlet\r\n\r\n")
            .await
            .expect("write");
        let answer = read_until_closed(&mut stream).await;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "answered first: {answer}"
        );
    }
}

async fn send_partial_body(base: &str, path: &str, extra_headers: &str) -> String {
    let mut stream = connect(base).await;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: inlet\r\nContent-Type: application/json\r\nContent-Length: 100\r\n{extra_headers}\r\n{{\"email\":"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    read_until_closed(&mut stream).await
}

backend_tests! {
    #[tokio::test]
    async fn a_partial_hook_body_is_answered_408_and_logged() {
        let app = spawn_app_with(|c| {
            c.header_timeout_secs = 30;
            c.body_timeout_secs = 1;
        })
        .await;
        let source = app.create_source(json!({"name": "slow"})).await;
        let answer = send_partial_body(&app.base, &source.hook, "").await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
        let errors = app.api_json("/api/errors").await;
        assert!(
            errors.to_string().contains("body_timeout"),
            "the refusal is in the error log: {errors}"
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_partial_api_body_is_answered_408() {
        let app = spawn_app_with(|c| {
            c.header_timeout_secs = 30;
            c.body_timeout_secs = 1;
        })
        .await;
        let auth = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
        let answer = send_partial_body(&app.base, "/api/sources", &auth).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn connections_past_the_cap_get_a_503_and_health_answers_once_they_close() {
        let app = spawn_app_with(|c| {
            c.max_connections = 2;
            c.header_timeout_secs = 30;
        })
        .await;
        let held = [connect(&app.base).await, connect(&app.base).await];
        // Let the server accept both (the kernel completes the handshake first).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut extra = connect(&app.base).await;
        extra
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: inlet\r\n\r\n")
            .await
            .expect("write");
        let answer = read_until_closed(&mut extra).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("too_many_connections"), "{answer}");
        assert!(answer.contains("\"error\""), "{answer}");

        drop(held);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let fresh = reqwest::Client::new();
        let health = fresh.get(app.url("/healthz")).send().await.expect("health");
        assert_eq!(health.status(), StatusCode::OK);
    }
}

backend_tests! {
    #[tokio::test]
    async fn bad_bearer_tokens_are_slowed_and_the_right_one_waits_out_the_lockout() {
        let app = spawn_app_with(|c| {
            c.auth_failures_per_address = 10;
            c.auth_window_secs = 2;
        })
        .await;
        let mut statuses = Vec::new();
        let mut last = None;
        for n in 0..20 {
            let response = app
                .client
                .get(app.url("/api/sources"))
                .bearer_auth(format!("guess-{n}"))
                .send()
                .await
                .expect("request");
            statuses.push(response.status());
            last = Some(response);
        }
        assert!(statuses[..10]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED));
        assert!(statuses[10..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS));
        let last = last.expect("a response");
        let retry_after: u64 = last.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        let body: Value = last.json().await.expect("json");
        assert_eq!(body["code"], "too_many_attempts");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));

        // The lockout holds for the right token too: else it would not slow a
        // guesser who gets it right.
        let during = app.api_get("/api/sources").await;
        assert_eq!(during.status(), StatusCode::TOO_MANY_REQUESTS);

        tokio::time::sleep(Duration::from_millis(retry_after * 1000 + 200)).await;
        let after = app.api_get("/api/sources").await;
        assert_eq!(after.status(), StatusCode::OK);
    }
}

backend_tests! {
    #[tokio::test]
    async fn bad_logins_get_a_429_page_that_says_to_wait() {
        let app = spawn_app_with(|c| c.auth_failures_per_address = 5).await;
        let login = |token: &'static str| {
            app.client
                .post(app.url("/login"))
                .form(&[("token", token)])
                .send()
        };
        for _ in 0..5 {
            let response = login("wrong-token").await.expect("login");
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        let response = login("wrong-token").await.expect("login");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().contains_key("retry-after"));
        let page = response.text().await.expect("page");
        assert!(page.contains("Too many wrong tokens"), "{page}");
        let right = login(ADMIN_TOKEN).await.expect("login");
        assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_weak_admin_token_is_refused_at_start_with_how_to_make_one() {
        let dir = tempfile::TempDir::new().expect("dir");
        let mut config = config_for(dir.path());
        config.admin_token = Some("abcd".into());
        let message = match Application::build(config).await {
            Ok(_) => panic!("a 4-character admin token was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(message.contains("openssl rand -hex 32"), "{message}");
        assert!(message.contains("24"), "{message}");
    }
}

/// Embedded only: the generated token's file and its mode (on PostgreSQL
/// the token's hash is in the database; tests/outage.rs covers sharing it).
#[tokio::test]
async fn the_generated_admin_token_is_strong() {
    let dir = tempfile::TempDir::new().expect("dir");
    let mut config = config_for(dir.path());
    config.admin_token = None;
    let app = Application::build(config).await.expect("starts");
    let token = std::fs::read_to_string(dir.path().join("admin_token")).expect("token file");
    assert!(token.trim().len() >= 43, "256 bits, base64: {token}");
    #[cfg(unix)]
    {
        let open = readable_by_others(dir.path());
        assert!(
            open.is_empty(),
            "the token file and lock are the owner's: {open:?}"
        );
    }
    drop(app);
}

/// Paths under `dir` (itself included) that group or others may use.
#[cfg(unix)]
fn readable_by_others(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        if meta.permissions().mode() & 0o077 != 0 {
            found.push(format!(
                "{} {:o}",
                path.display(),
                meta.permissions().mode()
            ));
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                pending.push(entry.expect("entry").path());
            }
        }
    }
    found
}

#[cfg(unix)]
#[tokio::test]
async fn every_file_in_the_data_dir_is_the_owners_only() {
    let mut app = common::spawn_app().await;
    let source = app.create_source(json!({"name": "perm"})).await;
    let sent = app
        .client
        .post(app.url(&source.hook))
        .json(&json!({"email": "a@example.com"}))
        .send()
        .await
        .expect("hook");
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    app.shutdown().await;
    let open = readable_by_others(&app.dir);
    assert!(open.is_empty(), "readable by group or others: {open:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn an_existing_data_dir_is_made_the_owners_only_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::TempDir::new().expect("dir");
    let nested = dir.path().join("old");
    std::fs::create_dir(&nested).expect("mkdir");
    std::fs::write(nested.join("leftover"), b"x").expect("write");
    std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(
        nested.join("leftover"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let app = Application::build(config_for(dir.path()))
        .await
        .expect("starts");
    let open = readable_by_others(dir.path());
    assert!(open.is_empty(), "readable by group or others: {open:?}");
    drop(app);
}
