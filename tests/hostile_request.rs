//! Hostile requests at a hook, through the real server: each case gets a
//! 4xx with a code, or is stored within the documented bound, and the
//! server keeps answering.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::Path;

/// The status and `code` of a refusal.
async fn refusal(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("json error body");
    let code = body["code"].as_str().unwrap_or_default().to_string();
    let error = body["error"].as_str().expect("error message").to_string();
    (status, code, error)
}

async fn assert_alive(app: &TestApp) {
    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
}

/// Bytes of whole records in the event log (segments are zero-filled
/// ahead of their records, so a file's size is not what was written).
fn log_record_bytes(data_dir: &Path) -> u64 {
    let mut total = 0u64;
    for entry in std::fs::read_dir(data_dir.join("log")).expect("log dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("segment");
        let mut at = 0usize;
        while at + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
            if len == 0 || at + 8 + len > bytes.len() {
                break;
            }
            total += 8 + len as u64;
            at += 8 + len;
        }
    }
    total
}

backend_tests! {
    #[tokio::test]
    async fn keys_nested_thousands_deep_are_refused_and_the_server_lives() {
        let app = spawn_app().await;
        let source = app.source_named("Deep").await;
        let key = vec!["a"; 10_000].join("__");
        let response = app
            .client
            .get(app.url(&format!("{}?{key}=1", source.hook)))
            .send()
            .await
            .expect("request");
        let (status, code, _) = refusal(response).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "too_deep")
        );
        assert_alive(&app).await;

        let response = app
            .send_raw(
                &source.hook,
                "application/x-www-form-urlencoded",
                format!("{key}=1"),
            )
            .await;
        let (status, code, _) = refusal(response).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "too_deep")
        );
        assert_alive(&app).await;
        assert_eq!(app.errors_at(&source, "decode").await.len(), 2);
    }
}

backend_tests! {
    #[tokio::test]
    async fn deep_json_embedded_as_a_string_is_refused_too_deep() {
        let app = spawn_app().await;
        let source = app
            .create_source(json!({"name": "Embedded", "records_path": "data"}))
            .await;
        let deep = "[".repeat(5_000) + &"]".repeat(5_000);
        let response = app.send(&source.hook, &json!({ "data": deep })).await;
        let (status, code, _) = refusal(response).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "too_deep")
        );
        assert_alive(&app).await;
        let errors = app.errors_at(&source, "records").await;
        assert_eq!(errors[0]["code"], "too_deep");
        // The excerpt of the refused body is bounded.
        let excerpt = errors[0]["excerpt"].as_str().expect("excerpt");
        assert!(excerpt.chars().count() <= 257, "{}", excerpt.len());
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_wide_form_is_refused_with_too_many_fields() {
        let app = spawn_app().await;
        let source = app.source_named("Wide").await;
        let body = "t=x&".repeat(20_000);
        let response = app
            .send_raw(&source.hook, "application/x-www-form-urlencoded", body)
            .await;
        let (status, code, _) = refusal(response).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "too_many_fields")
        );
    }
}

backend_tests! {
    /// Thousands of repeated column names: accepted at once, every column kept
    /// under its own name.
    #[tokio::test]
    async fn a_csv_with_thousands_of_repeated_column_names_is_accepted_with_distinct_names() {
        let app = spawn_app().await;
        let source = app
            .create_source(json!({"name": "Looker", "records_path": "attachment.data"}))
            .await;
        let columns = 5_000;
        let header = vec!["a"; columns].join(",");
        let row = vec!["1"; columns].join(",");
        let csv = format!("{header}\n{row}\n{row}\n");
        let body = json!({"attachment": {"data": csv, "mimetype": "text/csv"}});
        let ids = app.send_ok(&source.hook, &body).await;
        assert_eq!(ids.len(), 2);
        let payload = app.event(&ids[0]).await["payload"].clone();
        let payload = payload.as_object().expect("object");
        assert_eq!(payload.len(), columns);
        assert!(payload.contains_key("a") && payload.contains_key("a_2"));
        assert!(payload.contains_key(&format!("a_{columns}")));
    }
}

/// A 70 KB request of 10,000 rows under long column names: stored within
/// the factor (envelope and headers once, not per record).
#[tokio::test]
async fn ten_thousand_rows_are_stored_within_the_factor_of_the_body() {
    let app = spawn_app().await;
    let source = app
        .create_source(json!({"name": "Rows", "records_path": "attachment.data"}))
        .await;
    let header = "Orders Created Date,Users Email Address,Orders Total Revenue";
    let mut csv = header.to_string();
    for n in 0..10_000 {
        csv.push_str(&format!("\n{},,", n % 10));
    }
    let body = json!({
        "scheduled_plan": {"title": "Sales", "details": "d".repeat(20_000)},
        "attachment": {"data": csv, "mimetype": "text/csv"},
    });
    let body = serde_json::to_vec(&body).expect("body");
    let before = log_record_bytes(&app.dir);
    let response = app
        .send_raw(&source.hook, "application/json", body.clone())
        .await;
    let status = response.status();
    if status == StatusCode::ACCEPTED {
        let grew = log_record_bytes(&app.dir) - before;
        let bound = 16 * body.len() as u64 + 300 * 10_000;
        assert!(
            grew <= bound,
            "{grew} bytes stored for a {} byte body",
            body.len()
        );
        eprintln!(
            "stored {grew} bytes for a {} byte body ({:.1}x)",
            body.len(),
            grew as f64 / body.len() as f64
        );
    } else {
        let (status, code, _) = refusal(response).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, "explosion_too_large")
        );
    }
}

/// Rows as wide as a long header, each a byte or two of body per column:
/// refused before they are built, saying by how much.
#[tokio::test]
async fn an_explosion_past_the_factor_is_refused_413() {
    let app = spawn_app().await;
    let source = app
        .create_source(json!({"name": "Explode", "records_path": "attachment.data"}))
        .await;
    let header: Vec<String> = (0..400)
        .map(|i| format!("a rather long column name {i}"))
        .collect();
    let mut csv = header.join(",");
    let row = format!("\n1{}", ",".repeat(399));
    for _ in 0..150 {
        csv.push_str(&row);
    }
    let body = json!({"attachment": {"data": csv, "mimetype": "text/csv"}});
    let before = log_record_bytes(&app.dir);
    let response = app.send(&source.hook, &body).await;
    let (status, code, error) = refusal(response).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "explosion_too_large")
    );
    assert!(error.contains("bytes over its limit"), "{error}");
    assert_eq!(log_record_bytes(&app.dir), before);
    let errors = app.errors_at(&source, "records").await;
    assert_eq!(errors[0]["code"], "explosion_too_large");
}

backend_tests! {
    #[tokio::test]
    async fn head_on_a_hook_answers_200_and_logs_nothing() {
        let app = spawn_app().await;
        let source = app.source_named("Probe").await;
        let response = app
            .client
            .head(app.url(&source.hook))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(app
            .errors(&format!("source_id={}", source.id))
            .await
            .is_empty());
        assert!(app.source_events(&source).await.is_empty());
    }
}

backend_tests! {
    #[tokio::test]
    async fn credential_and_session_headers_are_not_stored() {
        let app = spawn_app().await;
        let source = app.source_named("Headers").await;
        let response = app
            .client
            .post(app.url(&source.hook))
            .header("X-Credentials", "user:hunter2")
            .header("X-Pass", "hunter2")
            .header("X-Session-Id", "s-1")
            .header("X-CSRF-Token", "c-1")
            .header("X-Shop-Event", "order")
            .json(&json!({"a": 1}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.expect("json");
        let id = ids_of(&body).remove(0);
        let event = app.event(&id).await;
        let headers = event["headers"].as_object().expect("headers");
        assert_eq!(headers["x-shop-event"], "order");
        for secret in ["x-credentials", "x-pass", "x-session-id", "x-csrf-token"] {
            assert!(!headers.contains_key(secret), "{secret} was stored");
        }
        assert!(!event.to_string().contains("hunter2"));
    }
}
