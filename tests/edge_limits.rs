//! Issue 18's edge: rotating a URL without downtime, and refusals every
//! client can read (413 to a client that writes everything first, 431, 429).
//! Each drives the real server, over HTTP or raw TCP.

mod common;

use common::{raw, spawn_app, spawn_app_with, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough for the server's bounds (a 5 s drain at most) on a loaded
/// 2-core machine; a connection the server never closes fails here.
const CLOSE_WITHIN: Duration = Duration::from_secs(15);

async fn connect(app: &TestApp) -> TcpStream {
    raw::connect(&app.base).await
}

async fn read_until_closed(stream: &mut TcpStream) -> String {
    raw::read_until_closed(stream, CLOSE_WITHIN).await
}

async fn source_json(app: &TestApp, id: &str) -> Value {
    app.api_json(&format!("/api/sources/{id}")).await
}

async fn rotate(app: &TestApp, id: &str, body: Option<Value>) -> reqwest::Response {
    let request = app
        .client
        .post(app.url(&format!("/api/sources/{id}/rotate")))
        .bearer_auth(common::ADMIN_TOKEN);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.expect("rotate")
}

async fn rotated_path(app: &TestApp, id: &str, body: Option<Value>) -> String {
    let response = rotate(app, id, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    body["webhook_path"].as_str().expect("path").to_string()
}

async fn status_of(app: &TestApp, hook: &str) -> StatusCode {
    app.send(hook, &json!({"email": "a@example.org"}))
        .await
        .status()
}

// --- rotation without downtime ---

backend_tests! {
    #[tokio::test]
    async fn during_a_grace_both_urls_work_the_old_one_is_counted_apart_and_stops_after() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        let old = source.hook.clone();
        let new = rotated_path(&app, &source.id, Some(json!({"grace_s": 2}))).await;

        assert_eq!(status_of(&app, &old).await, StatusCode::ACCEPTED);
        assert_eq!(status_of(&app, &old).await, StatusCode::ACCEPTED);
        assert_eq!(status_of(&app, &new).await, StatusCode::ACCEPTED);

        let view = source_json(&app, &source.id).await;
        assert_eq!(view["counts"]["received"], 3);
        assert_eq!(view["counts"]["old_token_requests"], 2);
        let previous = &view["previous_url"];
        assert_eq!(previous["active"], true, "{view}");
        assert_eq!(previous["requests"], 2);
        assert!(previous["last_used_at"].is_string(), "{previous}");
        assert!(previous["stops_at"].is_string(), "{previous}");
        let hint = previous["url_hint"].as_str().expect("hint");
        assert!(hint.ends_with('…') && hint.len() < old.len(), "{hint}");
        assert!(!view.to_string().contains(old.trim_start_matches("/hooks/")));

        tokio::time::sleep(Duration::from_millis(2300)).await;
        assert_eq!(status_of(&app, &old).await, StatusCode::NOT_FOUND);
        assert_eq!(status_of(&app, &new).await, StatusCode::ACCEPTED);
        let view = source_json(&app, &source.id).await;
        assert_eq!(view["previous_url"]["active"], false);
        assert_eq!(
            view["counts"]["old_token_requests"], 2,
            "a refused old token is not a use"
        );

        // The old-token count is persisted.
        let app = app.restart().await;
        let view = source_json(&app, &source.id).await;
        assert_eq!(view["counts"]["old_token_requests"], 2);
        assert_eq!(view["previous_url"]["requests"], 2);
    }
}

backend_tests! {
    #[tokio::test]
    async fn without_a_grace_the_old_url_stops_at_once_as_before() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        let second = rotated_path(&app, &source.id, None).await;
        assert_eq!(status_of(&app, &source.hook).await, StatusCode::NOT_FOUND);
        let third = rotated_path(&app, &source.id, Some(json!({"grace_s": 0}))).await;
        assert_eq!(status_of(&app, &second).await, StatusCode::NOT_FOUND);
        assert_eq!(status_of(&app, &third).await, StatusCode::ACCEPTED);
        let view = source_json(&app, &source.id).await;
        assert_eq!(view["previous_url"], Value::Null);
        assert_eq!(view["counts"]["old_token_requests"], 0);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_second_rotation_stops_the_url_still_in_its_grace() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        let second = rotated_path(&app, &source.id, Some(json!({"grace_s": 600}))).await;
        assert_eq!(status_of(&app, &source.hook).await, StatusCode::ACCEPTED);
        let third = rotated_path(&app, &source.id, Some(json!({"grace_s": 600}))).await;
        assert_eq!(status_of(&app, &source.hook).await, StatusCode::NOT_FOUND);
        assert_eq!(status_of(&app, &second).await, StatusCode::ACCEPTED);
        assert_eq!(status_of(&app, &third).await, StatusCode::ACCEPTED);
        let view = source_json(&app, &source.id).await;
        assert_eq!(
            view["counts"]["old_token_requests"], 1,
            "counted since the last rotation"
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_grace_past_thirty_days_or_not_a_number_is_refused() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        let response = rotate(&app, &source.id, Some(json!({"grace_s": 31 * 86_400}))).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.expect("json");
        assert!(
            body["error"].as_str().unwrap().contains("grace_s"),
            "{body}"
        );
        let response = rotate(&app, &source.id, Some(json!({"grace_s": "a day"}))).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(&app, &source.hook).await, StatusCode::ACCEPTED);
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_source_page_offers_a_grace_and_shows_both_urls() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        app.login().await;
        let page_path = format!("/sources/{}", source.id);
        let (_, html) = app.page(&page_path).await;
        assert!(
            html.contains("name=\"grace_s\""),
            "a grace choice on rotate"
        );
        assert!(!html.contains("Old URL"));

        let csrf = app.csrf(&page_path).await;
        let response = app
            .post_form(
                &format!("/sources/{}/rotate", source.id),
                &[("csrf", &csrf), ("grace_s", "3600")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()["location"].to_str().expect("ascii");
        let (_, html) = app.page(location).await;
        let new_url = common::webhook_url_in(&html).expect("the new URL, once");
        assert_eq!(status_of(&app, &source.hook).await, StatusCode::ACCEPTED);
        let new_path = &new_url[new_url.find("/hooks/").expect("hook path")..];
        assert_eq!(status_of(&app, new_path).await, StatusCode::ACCEPTED);

        let (_, html) = app.page(&page_path).await;
        assert!(html.contains("Old URL"), "{html}");
        assert!(html.contains("accepted until"), "{html}");
        assert!(html.contains("id=\"old-url-requests\">1<"), "{html}");
        let old_token = source.hook.trim_start_matches("/hooks/");
        assert!(
            !html.contains(old_token),
            "the old token is never shown again"
        );
        assert!(html.contains(&format!("/hooks/{}…", &old_token[..4])));
    }
}

// --- 413 to a client that writes the whole body first ---

/// Large enough that three times it is more than loopback's socket buffers
/// hold (several MiB when autotuned): a server that stops reading makes the
/// client's write fail.
const LIMIT: usize = 4 << 20;

async fn small_limit_app() -> TestApp {
    spawn_app_with(|c| c.max_body_bytes = LIMIT).await
}

/// Writes the whole request, as Python's `http.client` does, and only then
/// reads the answer. `Err` if the server closed while it was still writing.
async fn write_everything_then_read(
    stream: &mut TcpStream,
    head: String,
    body: &[u8],
) -> std::io::Result<String> {
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    Ok(read_until_closed(stream).await)
}

backend_tests! {
    #[tokio::test]
    async fn a_client_that_writes_the_whole_oversized_body_first_reads_its_413() {
        let app = small_limit_app().await;
        let source = app.source_named("Big").await;
        // Three times the limit: larger than the socket buffers take, within
        // the drain's bound.
        let body = vec![b'x'; 3 * LIMIT];
        for _ in 0..2 {
            let mut stream = connect(&app).await;
            let head = format!(
                "POST {} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                source.hook,
                body.len()
            );
            let answer = write_everything_then_read(&mut stream, head, &body)
                .await
                .expect("the server reads the whole body before it answers");
            assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
            assert!(answer.contains("\"code\":\"body_too_large\""), "{answer}");
            assert!(answer.to_ascii_lowercase().contains("connection: close"));
        }
        // Without a Content-Length (chunked), refused by counting, alike.
        let mut stream = connect(&app).await;
        let head = format!(
            "POST {} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
            source.hook
        );
        let mut chunked = Vec::new();
        for piece in body.chunks(64 << 10) {
            chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            chunked.extend_from_slice(piece);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let answer = write_everything_then_read(&mut stream, head, &chunked)
            .await
            .expect("the whole chunked body is read");
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("\"code\":\"body_too_large\""), "{answer}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_body_far_past_the_drain_bound_is_closed_not_read_for_ever() {
        let app = small_limit_app().await;
        let source = app.source_named("Big").await;
        // Declared far past the bound: answered at once, not read.
        let mut stream = connect(&app).await;
        let head = format!(
            "POST {} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            source.hook,
            1u64 << 40
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        let answer = read_until_closed(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

        // Chunked and endless: the server reads up to its bound and closes.
        let mut stream = connect(&app).await;
        let head = format!(
            "POST {} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
            source.hook
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        let (mut reader, mut writer) = stream.into_split();
        let writing = tokio::spawn(async move {
            let chunk = [
                format!("{:x}\r\n", 64 << 10).into_bytes(),
                vec![b'x'; 64 << 10],
                b"\r\n".to_vec(),
            ]
            .concat();
            let mut sent = 0usize;
            while writer.write_all(&chunk).await.is_ok() {
                sent += chunk.len();
                if sent > 40 * LIMIT {
                    break;
                }
            }
            sent
        });
        let closed = tokio::time::timeout(CLOSE_WITHIN, async {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the server kept reading");
        let sent = writing.await.expect("writer");
        assert!(
            sent < 40 * LIMIT,
            "the server stopped reading ({sent} bytes sent)"
        );
    }
}

// --- 431 ---

async fn with_headers(app: &TestApp, headers: &[(String, String)]) -> (StatusCode, String) {
    let mut request = app.client.get(app.url("/healthz"));
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.expect("an answer, not a reset");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

fn code_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .map(|v| v["code"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

backend_tests! {
    #[tokio::test]
    async fn oversized_or_too_many_headers_get_a_431_with_a_code() {
        let app = spawn_app().await;
        let (status, _) = with_headers(&app, &[("x-fine".into(), "a".repeat(8 << 10))]).await;
        assert_eq!(status, StatusCode::OK, "an 8 KiB header is served");

        let (status, body) = with_headers(&app, &[("x-long".into(), "a".repeat(17 << 10))]).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(code_of(&body), "header_too_large", "{body}");
        assert!(body.contains("x-long"), "names the header: {body}");

        let block: Vec<(String, String)> = (0..6)
            .map(|i| (format!("x-part-{i}"), "b".repeat(15 << 10)))
            .collect();
        let (status, body) = with_headers(&app, &block).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(code_of(&body), "headers_too_large", "{body}");

        let many: Vec<(String, String)> = (0..120).map(|i| (format!("x-h-{i}"), "v".into())).collect();
        let (status, body) = with_headers(&app, &many).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(code_of(&body), "too_many_headers", "{body}");

        // Past what hyper parses: its own bare 431, still a readable status.
        let very_many: Vec<(String, String)> =
            (0..400).map(|i| (format!("x-h-{i}"), "v".into())).collect();
        let (status, _) = with_headers(&app, &very_many).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

        let (status, _) = with_headers(&app, &[]).await;
        assert_eq!(status, StatusCode::OK, "the server still serves");
    }
}

// --- 429 ---

backend_tests! {
    #[tokio::test]
    async fn a_rate_limited_source_answers_429_with_retry_after_and_recovers() {
        let app = spawn_app().await;
        let source = app
            .create_source(json!({"name": "Limited", "rate_limit": {"per_s": 1, "burst": 2}}))
            .await;
        assert_eq!(source.body["rate_limit"], json!({"per_s": 1, "burst": 2}));
        assert_eq!(status_of(&app, &source.hook).await, StatusCode::ACCEPTED);
        assert_eq!(status_of(&app, &source.hook).await, StatusCode::ACCEPTED);

        let response = app.send(&source.hook, &json!({"n": 3})).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("whole seconds");
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], "rate_limited", "{body}");

        // A flood: refused, and logged at most once a second.
        for _ in 0..30 {
            assert_eq!(
                status_of(&app, &source.hook).await,
                StatusCode::TOO_MANY_REQUESTS
            );
        }
        let logged = app.errors_at(&source, "limit").await;
        assert!(
            (1..=3).contains(&logged.len()),
            "bounded: {} entries",
            logged.len()
        );
        assert_eq!(logged[0]["code"], "rate_limited");

        tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(100)).await;
        assert_eq!(status_of(&app, &source.hook).await, StatusCode::ACCEPTED);

        // Other sources are not limited; and the limit can be removed.
        let other = app.source_named("Free").await;
        for _ in 0..5 {
            assert_eq!(status_of(&app, &other.hook).await, StatusCode::ACCEPTED);
        }
        let response = app
            .api_send(
                reqwest::Method::PATCH,
                &format!("/api/sources/{}", source.id),
                json!({"rate_limit": null}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        for _ in 0..5 {
            assert_eq!(status_of(&app, &source.hook).await, StatusCode::ACCEPTED);
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_rate_limit_of_zero_is_refused_and_patch_can_set_one() {
        let app = spawn_app().await;
        let response = app
            .api_send(
                reqwest::Method::POST,
                "/api/sources",
                json!({"name": "x", "rate_limit": {"per_s": 0, "burst": 1}}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let source = app.source_named("Later").await;
        let response = app
            .api_send(
                reqwest::Method::PATCH,
                &format!("/api/sources/{}", source.id),
                json!({"rate_limit": {"per_s": 1, "burst": 1}}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(status_of(&app, &source.hook).await, StatusCode::ACCEPTED);
        assert_eq!(
            status_of(&app, &source.hook).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        app.login().await;
        let (_, html) = app.page(&format!("/sources/{}", source.id)).await;
        assert!(html.contains("1 requests a second, bursts of 1"), "{html}");
    }
}
