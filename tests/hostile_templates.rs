//! Hostile templates through the real server: a mapping that would nest or
//! render without bound is refused when saved with a 400 and a code; one
//! that reaches the store anyway (saved before the limits, or written by
//! hand) fails its events instead of crashing the processor, also across a
//! restart; a render too large for one event fails that event; previews
//! are bounded.

mod common;

use common::{spawn_app, TestApp, TestSource};
use inlet::domain::ids::SourceId;
use inlet::domain::model::MappingSpec;
use inlet::store::StateStore;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn nested_ifs(n: usize) -> String {
    format!("{}x{}", "{{#if a}}".repeat(n), "{{/if}}".repeat(n))
}

async fn healthy(app: &TestApp) {
    let response = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(response.status(), StatusCode::OK);
}

/// Writes a mapping straight into the store, bypassing the API's checks.
fn store_mapping(app: &TestApp, source: &TestSource, spec: Value) {
    let id: SourceId = source.id.parse().expect("source id");
    let spec: MappingSpec = serde_json::from_value(spec).expect("spec");
    app.state
        .services
        .store
        .save_mapping(id, &spec, None)
        .expect("stored");
}

backend_tests! {
    #[tokio::test]
    async fn a_mapping_with_5000_nested_blocks_is_refused_with_a_code() {
        let app = spawn_app().await;
        let source = app.source_named("deep").await;
        for (template, code) in [
            (nested_ifs(5000), "template_too_deep"),
            (nested_ifs(17), "template_too_deep"),
            (
                format!("{{{{a}}}}{}", "x".repeat(9000)),
                "template_too_large",
            ),
        ] {
            let response = app
                .try_put_mapping(
                    &source,
                    json!({"event_name": template, "email": "{{email}}"}),
                )
                .await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["code"], code, "{body}");
            assert!(body["error"].is_string());
            assert!(
                body["fields"]["event_name"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "the refusal names the slot: {body}"
            );
        }
        let response = app
            .try_put_mapping(
                &source,
                json!({"event_name": "{{log type}}", "email": "{{email}}"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        healthy(&app).await;
        // A mapping at the limits is accepted and maps.
        let ok = nested_ifs(16).replace('x', "{{type}}");
        app.put_mapping(&source, json!({"event_name": ok, "email": "{{email}}"}))
            .await;
        let event = app
            .send_processed(
                &source.hook,
                &json!({"a": 1, "type": "Order", "email": "a@x.org"}),
            )
            .await;
        assert_eq!(event["status"], "resolved", "{event}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_huge_output_template_fails_its_event_and_the_server_goes_on() {
        let app = spawn_app().await;
        let source = app
            .mapped_source(
                "wide",
                json!({
                    "event_name": "e", "email": "{{email}}",
                    "properties": {"blob": "{{#each items}}{{this}}{{this}}{{this}}{{this}}{{/each}}"}
                }),
            )
            .await;
        let items: Vec<String> = (0..2000).map(|i| format!("{i:0>60}")).collect();
        let event = app
            .send_processed(&source.hook, &json!({"email": "a@x.org", "items": items}))
            .await;
        assert_eq!(event["status"], "failed", "{event}");
        let errors = app.errors("stage=map").await;
        assert!(
            errors.iter().any(|e| e["code"] == "output_too_large"),
            "{errors:?}"
        );
        healthy(&app).await;
        let ok = app
            .send_processed(&source.hook, &json!({"email": "b@x.org", "items": ["a"]}))
            .await;
        assert_eq!(ok["status"], "resolved", "{ok}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_crash_class_mapping_written_into_the_store_fails_events_and_survives_a_restart() {
        let app = spawn_app().await;
        let source = app.source_named("stored").await;
        store_mapping(
            &app,
            &source,
            json!({"event_name": nested_ifs(5000), "email": "{{email}}"}),
        );
        let first = app
            .send_processed(&source.hook, &json!({"a": 1, "email": "a@x.org"}))
            .await;
        assert_eq!(first["status"], "failed", "{first}");
        let errors = app.errors("stage=map").await;
        assert!(
            errors.iter().any(|e| e["code"] == "template_too_deep"),
            "{errors:?}"
        );
        healthy(&app).await;
        // A preview with the broken stored mapping refuses with its code.
        let response = app
            .api_send(
                reqwest::Method::POST,
                &format!("/api/sources/{}/mapping/preview", source.id),
                json!({"payload": {"email": "p@x.org"}}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], "template_too_deep", "{body}");

        let first_id = first["id"].as_str().expect("id").to_owned();
        let app = app.restart().await;
        healthy(&app).await;
        assert_eq!(app.event(&first_id).await["status"], "failed");
        let second = app
            .send_processed(&source.hook, &json!({"a": 1, "email": "b@x.org"}))
            .await;
        assert_eq!(second["status"], "failed", "{second}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_preview_answer_is_bounded() {
        let app = spawn_app().await;
        let source = app.source_named("preview").await;
        // 40 records of 40 KB: 1.6 MB, under the API's 2 MB body limit.
        let big = "p".repeat(40_000);
        let records: Vec<Value> = (0..40)
            .map(|i| json!({"i": i, "big": big, "email": "a@x.org"}))
            .collect();
        let response = app
            .api_send(
                reqwest::Method::POST,
                &format!("/api/sources/{}/mapping/preview", source.id),
                json!({
                    "mapping": {"event_name": "e", "email": "{{email}}", "properties": "*"},
                    "payload": records,
                }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.bytes().await.expect("body");
        assert!(
            bytes.len() < 512 * 1024,
            "preview answered {} bytes",
            bytes.len()
        );
        let body: Value = serde_json::from_slice(&bytes).expect("json");
        let results = body["results"].as_array().expect("results");
        assert!(!results.is_empty() && results.len() <= 20);
        assert_eq!(results[0]["truncated"], true, "{}", results[0]);
        assert_eq!(body["omitted"], 40 - results.len());
    }
}
