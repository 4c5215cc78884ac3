//! Activity over time (issue 16, "pictures"): counts per minute, hour and
//! day per source, kept as counters by the processor, on the API
//! (`/api/activity`), the home page (`/`, an SVG chart) and the sources
//! list (sparklines); they survive a restart.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const MAPPING: &str = r#"{"event_name": "{{type}}", "email": "{{email}}"}"#;

/// Sends `ok` events that resolve and `bad` ones that fail (no `type`)
/// to a source, and waits until every one is processed.
async fn send_mix(app: &TestApp, source: &TestSource, ok: usize, bad: usize) {
    let mut ids = Vec::new();
    for i in 0..ok {
        let body = json!({"type": "order", "email": format!("ok{i}@example.org")});
        ids.extend(app.send_ok(&source.hook, &body).await);
    }
    for i in 0..bad {
        let body = json!({"email": format!("bad{i}@example.org")});
        ids.extend(app.send_ok(&source.hook, &body).await);
    }
    for id in &ids {
        app.processed_event(id).await;
    }
}

async fn two_sources(app: &TestApp) -> (TestSource, TestSource) {
    let mapping: Value = serde_json::from_str(MAPPING).unwrap();
    let shop = app.mapped_source("Shop", mapping.clone()).await;
    let crm = app.mapped_source("CRM", mapping).await;
    send_mix(app, &shop, 3, 1).await;
    send_mix(app, &crm, 1, 2).await;
    (shop, crm)
}

fn current(view: &Value) -> &Value {
    view["buckets"]
        .as_array()
        .expect("buckets")
        .last()
        .expect("a current bucket")
}

/// The current bucket's counts; for `minute` the whole window's, so a test
/// that runs across a minute boundary still holds (an hour or a day
/// boundary inside one test is rare enough to accept).
fn now_counts(view: &Value) -> (u64, u64, u64) {
    if view["window"] == "minute" {
        counts(&view["totals"])
    } else {
        counts(current(view))
    }
}

fn counts(bucket: &Value) -> (u64, u64, u64) {
    let n = |k: &str| {
        bucket[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {bucket}"))
    };
    (n("received"), n("resolved"), n("failed"))
}

backend_tests! {
    #[tokio::test]
    async fn the_api_counts_each_source_in_the_current_bucket_of_every_window() {
        let app = spawn_app().await;
        let (shop, crm) = two_sources(&app).await;
        for window in ["minute", "hour", "day"] {
            let all = app
                .api_json(&format!("/api/activity?window={window}"))
                .await;
            assert_eq!(all["window"], window);
            assert_eq!(now_counts(&all), (7, 4, 3), "{window}: {all}");
            let one = app
                .api_json(&format!(
                    "/api/activity?window={window}&source_id={}",
                    shop.id
                ))
                .await;
            assert_eq!(now_counts(&one), (4, 3, 1), "{window}");
            let other = app
                .api_json(&format!(
                    "/api/activity?window={window}&source_id={}",
                    crm.id
                ))
                .await;
            assert_eq!(now_counts(&other), (3, 1, 2), "{window}");
        }
        let minute = app.api_json("/api/activity?window=minute").await;
        assert_eq!(minute["buckets"].as_array().unwrap().len(), 60);
        assert_eq!(minute["bucket_seconds"], 60);
        let hour = app.api_json("/api/activity").await;
        assert_eq!(hour["window"], "hour", "the default window is the last day");
        assert_eq!(hour["buckets"].as_array().unwrap().len(), 24);
        let day = app.api_json("/api/activity?window=day").await;
        assert_eq!(day["buckets"].as_array().unwrap().len(), 30);
        assert_eq!(hour["totals"]["processed"], 7);
        let rate = hour["error_rate"].as_f64().unwrap();
        assert!((rate - 3.0 / 7.0).abs() < 1e-9, "{rate}");
        let codes = hour["top_codes"].as_array().unwrap();
        assert_eq!(codes[0]["count"], 3, "{codes:?}");
        assert_eq!(hour["lag"]["pending"], 0);
        assert!(hour["lag"]["oldest_pending_seconds"].is_null());
    }
}

backend_tests! {
    #[tokio::test]
    async fn bad_activity_parameters_answer_the_documented_json_error() {
        let app = spawn_app().await;
        let response = app.api_get("/api/activity?window=week").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let message = error_of(response, StatusCode::BAD_REQUEST).await;
        assert!(message.contains("minute, hour, day"), "{message}");
        let response = app.api_get("/api/activity?source_id=nope").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let unknown = format!("/api/activity?source_id={}", uuid::Uuid::now_v7());
        let response = app.api_get(&unknown).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_counts_survive_a_restart() {
        let app = spawn_app().await;
        let (shop, _) = two_sources(&app).await;
        let before = app.api_json("/api/activity?window=minute").await;
        let app = app.restart().await;
        let after = app.api_json("/api/activity?window=minute").await;
        assert_eq!(before["buckets"], after["buckets"]);
        let day = app
            .api_json(&format!("/api/activity?window=day&source_id={}", shop.id))
            .await;
        assert_eq!(counts(current(&day)), (4, 3, 1));
        // And counting goes on from there.
        send_mix(&app, &shop, 1, 0).await;
        let day = app
            .api_json(&format!("/api/activity?window=day&source_id={}", shop.id))
            .await;
        assert_eq!(counts(current(&day)), (5, 4, 1));
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_home_page_draws_the_counts_as_svg_with_titles() {
        let app = spawn_app().await;
        let (shop, _) = two_sources(&app).await;
        app.login().await;
        let (status, html) = app.page("/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("<svg class=\"chart\""), "{html}");
        assert!(html.contains("data-window=\"hour\""));
        assert!(
            html.contains("received 7, resolved 4, failed 3"),
            "the current hour's counts in a <title>"
        );
        assert!(html.contains("class=\"bar failed\""));
        assert!(html.contains("href=\"/\""), "a Home link in the nav");
        assert!(
            html.contains("<ol class=\"codes\">") && html.contains("href=\"/errors?code"),
            "top codes link to the error log"
        );
        let (_, minute) = app.page("/?window=minute").await;
        assert!(minute.contains("data-window=\"minute\""));
        assert_eq!(minute.matches("<g class=\"bucket\">").count(), 60);
        let (_, one) = app
            .page(&format!("/?window=day&source_id={}", shop.id))
            .await;
        assert!(one.contains("received 4, resolved 3, failed 1"), "{one}");
        assert!(!one.contains("received 7,"));
        // The events list moved to /events.
        let (_, events) = app.page("/events").await;
        assert!(events.contains("Recent events"));
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_sources_list_shows_a_sparkline_per_source() {
        let app = spawn_app().await;
        two_sources(&app).await;
        app.login().await;
        let (_, html) = app.page("/sources").await;
        assert_eq!(html.matches("<svg class=\"spark\"").count(), 2, "{html}");
        assert!(html.contains("<title>Last 24 hours: received 4, failed 1</title>"));
        assert!(html.contains("<title>Last 24 hours: received 3, failed 2</title>"));
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_replay_moves_events_within_the_bucket_they_arrived_in() {
        let app = spawn_app().await;
        let mapping: Value = serde_json::from_str(MAPPING).unwrap();
        let shop = app.mapped_source("Shop", mapping).await;
        send_mix(&app, &shop, 0, 2).await;
        let path = format!("/api/activity?window=day&source_id={}", shop.id);
        assert_eq!(counts(current(&app.api_json(&path).await)), (2, 0, 2));
        app.put_mapping(&shop, json!({"event_name": "order", "email": "{{email}}"}))
            .await;
        assert_eq!(
            app.replay(&shop, "failed").await.status(),
            StatusCode::ACCEPTED
        );
        app.wait_for_replay(&shop).await;
        let view = app.api_json(&path).await;
        assert_eq!(counts(current(&view)), (2, 2, 0), "{view}");
        assert_eq!(view["error_rate"], 0.0);
    }
}
