//! Reads cost what they show (issue 14): lists, searches and the event page
//! of large events answer bounded bodies, searches stop at their budget and
//! say where to go on, and a profile's repeated refusals fold into one line.

mod common;

use common::*;
use serde_json::{json, Value};

/// A source that maps an email and keeps the whole record as properties, so
/// both the payload and the mapped state of a large event are large.
async fn whole_record_source(app: &TestApp) -> TestSource {
    app.mapped_source(
        "Big",
        json!({"event_name": "{{type}}", "email": "{{email}}", "properties": "*"}),
    )
    .await
}

fn large_event(email: &str, bytes: usize) -> Value {
    json!({"type": "upload", "email": email, "blob": "é".repeat(bytes / 2)})
}

async fn bytes_of(app: &TestApp, path: &str) -> Vec<u8> {
    let response = app.api_get(path).await;
    assert_eq!(response.status(), reqwest::StatusCode::OK, "{path}");
    response.bytes().await.expect("body").to_vec()
}

backend_tests! {
    #[tokio::test]
    async fn a_list_of_multi_megabyte_events_answers_a_small_body() {
        let app = spawn_app_with(|c| c.max_body_bytes = 16 << 20).await;
        let source = whole_record_source(&app).await;
        let mut ids = Vec::new();
        for n in 0..4 {
            let sent = app
                .send_ok(
                    &source.hook,
                    &large_event(&format!("u{n}@example.org"), 3 << 20),
                )
                .await;
            ids.extend(sent);
        }
        for id in &ids {
            app.wait_until_resolved(id).await;
        }

        let body = bytes_of(&app, "/api/events?limit=10").await;
        // 4 × 3 MB of payload and 4 × 3 MB of properties, shown as excerpts.
        assert!(body.len() < 32 << 10, "list answered {} bytes", body.len());
        let list: Value = serde_json::from_slice(&body).unwrap();
        let events = list["events"].as_array().unwrap();
        assert_eq!(events.len(), 4);
        for event in events {
            assert_eq!(event["payload"], Value::Null);
            assert_eq!(event["payload_truncated"], true);
            assert!(event["payload_excerpt"].as_str().unwrap().len() <= 1024);
            assert!(event["payload_excerpt"]
                .as_str()
                .unwrap()
                .starts_with("{\"blob\":\"éé"));
            assert_eq!(event["properties"], Value::Null);
            assert_eq!(event["properties_truncated"], true);
            assert!(event["email"].as_str().unwrap().ends_with("@example.org"));
            assert_eq!(event["status"], "resolved");
            assert!(event["record_bytes"].as_u64().unwrap() > 3 << 20);
        }
        assert_eq!(list["partial"], false);

        // The profile's events list is bounded the same way.
        let profile = app.profile_by_email("u0@example.org").await;
        let body = bytes_of(
            &app,
            &format!("/api/profiles/{}/events", profile["id"].as_str().unwrap()),
        )
        .await;
        assert!(
            body.len() < 8 << 10,
            "profile events answered {} bytes",
            body.len()
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_event_page_truncates_and_the_raw_endpoint_has_every_byte() {
        let app = spawn_app_with(|c| c.max_body_bytes = 16 << 20).await;
        let source = whole_record_source(&app).await;
        let sent = large_event("ann@example.org", 3 << 20);
        let id = app.send_ok(&source.hook, &sent).await.remove(0);
        app.wait_until_resolved(&id).await;

        let body = bytes_of(&app, &format!("/api/events/{id}")).await;
        assert!(body.len() < 3 << 20, "event answered {} bytes", body.len());
        let event: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["truncated"], true);
        let excerpt = event["payload_excerpt"].as_str().unwrap();
        assert!(excerpt.len() <= 1 << 20 && excerpt.len() > (1 << 20) - 8);
        assert_eq!(event["raw_url"], format!("/api/events/{id}/raw"));

        let raw = bytes_of(&app, &format!("/api/events/{id}/raw")).await;
        let raw: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(raw["payload"], sent);
        assert_eq!(raw["id"], id.as_str());

        // A small event is shown whole, as before.
        let small = app
            .send_processed(
                &source.hook,
                &json!({"type": "t", "email": "bob@example.org"}),
            )
            .await;
        assert_eq!(small["payload"]["email"], "bob@example.org");
        assert_eq!(small["properties"]["type"], "t");
        assert_eq!(small["truncated"], false);
        let r = app.api_get("/api/events/nope/raw").await;
        error_of(r, reqwest::StatusCode::NOT_FOUND).await;
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_search_stops_at_its_budget_and_the_client_continues_to_the_match() {
        let app = spawn_app_with(|c| c.max_body_bytes = 16 << 20).await;
        let source = whole_record_source(&app).await;
        // The match is the oldest event; six large ones are newer.
        let target = app
            .send_ok(&source.hook, &large_event("needle@example.org", 1 << 20))
            .await
            .remove(0);
        let mut last = target.clone();
        for n in 0..6 {
            last = app
                .send_ok(
                    &source.hook,
                    &large_event(&format!("hay{n}@example.org"), 1 << 20),
                )
                .await
                .remove(0);
        }
        app.wait_until_resolved(&last).await;

        let mut path = "/api/events?q=needle@example.org&scan=2".to_string();
        let mut requests = 0;
        let found = loop {
            requests += 1;
            assert!(requests < 10, "the search never reached the match");
            let body = bytes_of(&app, &path).await;
            assert!(body.len() < 8 << 10, "search answered {} bytes", body.len());
            let page: Value = serde_json::from_slice(&body).unwrap();
            assert!(page["scanned"].as_u64().unwrap() <= 2);
            if let Some(event) = page["events"].as_array().unwrap().first() {
                break event.clone();
            }
            assert_eq!(page["partial"], true, "{page}");
            let next = page["next"].as_str().expect("a cursor to continue from");
            path = format!("/api/events?q=needle@example.org&scan=2&before={next}");
        };
        assert_eq!(found["id"], target.as_str());
        assert!(requests >= 4, "found after {requests} requests");

        // Without a small budget one request finds it.
        let page = app.api_json("/api/events?q=needle@example.org").await;
        assert_eq!(page["events"][0]["id"], target.as_str());
        assert_eq!(page["partial"], false);
    }
}

backend_tests! {
    #[tokio::test]
    async fn hundreds_of_identical_refusals_fold_into_one_history_line() {
        let app = spawn_app().await;
        let source = app
            .create_source(json!({"name": "Rows", "records_path": "rows"}))
            .await;
        app.put_mapping(
            &source,
            json!({"event_name": "{{type}}", "email": "{{email}}", "visitor_id": "{{anon}}"}),
        )
        .await;
        // Every row joins Ann's profile and has a placeholder visitor id, which
        // is refused the same way each time.
        let rows: Vec<Value> = (0..300)
            .map(|_| json!({"type": "page", "email": "ann@example.org", "anon": "anonymous"}))
            .collect();
        let ids = app.send_ok(&source.hook, &json!({ "rows": rows })).await;
        assert_eq!(ids.len(), 300);
        app.wait_until_resolved(ids.last().unwrap()).await;

        let profile = app.profile_by_email("ann@example.org").await;
        let pid = profile["id"].as_str().unwrap();
        let page = app.api_json(&format!("/api/profiles/{pid}/history")).await;
        let history = page["history"].as_array().unwrap();
        let refusals: Vec<&Value> = history.iter().filter(|h| h["kind"] == "refusal").collect();
        assert_eq!(refusals.len(), 1, "{history:?}");
        assert_eq!(refusals[0]["count"], 300);
        assert!(refusals[0]["first_seen"].as_str() <= refusals[0]["last_seen"].as_str());
        assert_eq!(page["next"], Value::Null);

        // Paged: one line, then the rest from `next`, newest first.
        let first = app
            .api_json(&format!("/api/profiles/{pid}/history?limit=1"))
            .await;
        assert_eq!(first["history"].as_array().unwrap().len(), 1);
        assert_eq!(first["history"][0]["kind"], "refusal");
        let next = first["next"].as_str().expect("a cursor");
        let rest = app
            .api_json(&format!(
                "/api/profiles/{pid}/history?limit=1&before={next}"
            ))
            .await;
        assert_eq!(rest["history"][0]["kind"], "create");
        assert_eq!(rest["history"][0]["count"], 1);

        // The dashboard page shows the folded line with its count.
        app.login().await;
        let (_, html) = app.page(&format!("/profiles/{pid}")).await;
        assert!(html.contains("×300"), "{html}");
    }
}

backend_tests! {
    /// A query parameter that does not parse is the API's JSON error with a
    /// code, not axum's plain-text rejection; `limit=0` reads as 1.
    #[tokio::test]
    async fn a_bad_query_parameter_is_a_json_error_that_names_it() {
        let app = spawn_app().await;
        let source = app.source_named("shop").await;
        let events = format!("/api/sources/{}/samples?limit=abc", source.id);
        for path in [
            "/api/events?limit=abc",
            "/api/events?limit=-1",
            "/api/errors?limit=1.5",
            events.as_str(),
        ] {
            let response = app.api_get(path).await;
            assert_eq!(response.status(), 400, "{path}");
            let kind = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            assert!(kind.starts_with("application/json"), "{path}: {kind}");
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["code"], "invalid_query", "{path}: {body}");
            let message = body["error"].as_str().unwrap_or_default();
            assert!(message.contains("limit"), "{path}: {message}");
        }
        let page = app.api_json("/api/events?limit=0").await;
        assert!(page["events"].is_array(), "{page}");
    }
}
