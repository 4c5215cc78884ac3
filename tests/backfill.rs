//! Backfills and fixes after the fact, as a marketer and support staff meet
//! them: a trait added in mapping version 2 reaches the profiles that
//! already exist by replaying resolved events (idempotently, bounded by
//! time, counted before it runs); a failed event names the version that
//! failed it and can be retried; an event of a deleted source offers
//! nothing it cannot do; a refused identifier is not a plain green resolve.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

/// Version 1: who, what and a plan; no city.
fn version_1() -> Value {
    json!({
        "event_name": "{{type}}",
        "email": "{{email}}",
        "visitor_id": "{{anon}}",
        "traits": {"plan": "{{plan}}"},
        "timestamp": "{{ts}}"
    })
}

/// Version 2 adds the city trait.
fn version_2() -> Value {
    json!({
        "event_name": "{{type}}",
        "email": "{{email}}",
        "visitor_id": "{{anon}}",
        "traits": {"plan": "{{plan}}", "city": "{{city}}"},
        "timestamp": "{{ts}}"
    })
}

fn visit(email: &str, ts: &str, city: &str) -> Value {
    json!({"type": "visit", "email": email, "ts": ts, "plan": "pro", "city": city})
}

async fn replay_with(app: &TestApp, source: &TestSource, body: Value) -> (StatusCode, Value) {
    let response = app
        .api_send(
            Method::POST,
            &format!("/api/sources/{}/replay", source.id),
            body,
        )
        .await;
    let status = response.status();
    (status, response.json().await.expect("json"))
}

/// Starts a replay and waits for it to finish.
async fn replay_done(app: &TestApp, source: &TestSource, body: Value) -> Value {
    let (status, job) = replay_with(app, source, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "replay: {job}");
    app.wait_for_replay(source).await;
    job
}

/// What a second replay must leave alone: the profile, its history, its
/// events, and the source's counts.
async fn snapshot(app: &TestApp, source: &TestSource, email: &str) -> (Value, usize, usize, Value) {
    let profile = app.profile_by_email(email).await;
    let id = profile["id"].as_str().expect("id").to_string();
    let history = app.profile_history(&id).await.len();
    let events = app.profile_events(&id).await.len();
    let counts = app.api_json(&format!("/api/sources/{}", source.id)).await["counts"].clone();
    (profile, history, events, counts)
}

backend_tests! {
    #[tokio::test]
    async fn replaying_resolved_events_brings_a_version_2_trait_to_existing_profiles_once() {
        let app = spawn_app().await;
        let source = app.mapped_source("Web", version_1()).await;
        // Ann's newer event arrives first; her older one (another city) after.
        for body in [
            visit("ann@example.org", "2026-01-02T10:00:00Z", "Paris"),
            visit("ann@example.org", "2026-01-01T10:00:00Z", "Lyon"),
            visit("bob@example.org", "2026-01-01T10:00:00Z", "Oslo"),
        ] {
            app.send_processed(&source.hook, &body).await;
        }
        assert!(app.profile_by_email("ann@example.org").await["traits"]["city"].is_null());
        app.put_mapping(&source, version_2()).await;

        let (status, plan) = replay_with(
            &app,
            &source,
            json!({"status": "resolved", "dry_run": true}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "dry run: {plan}");
        assert_eq!(plan["would_touch"], 3);
        assert_eq!(plan["version"], 2);
        assert!(app.profile_by_email("ann@example.org").await["traits"]["city"].is_null());

        let job = replay_done(&app, &source, json!({"status": "resolved"})).await;
        assert_eq!(job["status"], "resolved");
        assert_eq!(job["total"], 3);
        let ann = app.profile_by_email("ann@example.org").await;
        // Newest wins by event time: the older event replayed after does not
        // overwrite Paris.
        assert_eq!(ann["traits"]["city"], "Paris", "{ann}");
        assert_eq!(ann["event_count"], 2, "{ann}");
        let bob = app.profile_by_email("bob@example.org").await;
        assert_eq!(bob["traits"]["city"], "Oslo");
        let first = snapshot(&app, &source, "ann@example.org").await;
        assert_eq!(first.2, 2, "ann's events listed once each");
        assert_eq!(first.3["resolved"], 3);

        replay_done(&app, &source, json!({"status": "all"})).await;
        let second = snapshot(&app, &source, "ann@example.org").await;
        assert_eq!(second, first, "a second replay changes nothing");
        for event in app.source_events(&source).await {
            assert_eq!(event["status"], "resolved");
            assert_eq!(event["mapping_version"], 2);
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn since_bounds_a_replay_of_resolved_events() {
        let app = spawn_app().await;
        let source = app.mapped_source("Web", version_1()).await;
        app.send_processed(
            &source.hook,
            &visit("old@example.org", "2026-01-01T10:00:00Z", "Rome"),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let since = chrono::Utc::now().to_rfc3339();
        tokio::time::sleep(Duration::from_millis(50)).await;
        app.send_processed(
            &source.hook,
            &visit("new@example.org", "2026-01-01T10:00:00Z", "Bern"),
        )
        .await;
        app.put_mapping(&source, version_2()).await;

        let (status, plan) = replay_with(
            &app,
            &source,
            json!({"status": "resolved", "since": since, "dry_run": true}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{plan}");
        assert_eq!(plan["would_touch"], 1);

        let job = replay_done(&app, &source, json!({"status": "resolved", "since": since})).await;
        assert_eq!(job["total"], 1);
        assert_eq!(
            app.profile_by_email("new@example.org").await["traits"]["city"],
            "Bern"
        );
        assert!(app.profile_by_email("old@example.org").await["traits"]["city"].is_null());

        let (status, body) = replay_with(
            &app,
            &source,
            json!({"status": "resolved", "since": "yesterday"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"].as_str().unwrap().contains("RFC 3339"),
            "{body}"
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_dashboard_says_what_a_replay_of_resolved_events_will_do_before_it_runs() {
        let app = spawn_app().await;
        let source = app.mapped_source("Web shop", version_1()).await;
        app.send_processed(
            &source.hook,
            &visit("ann@example.org", "2026-01-01T10:00:00Z", "Paris"),
        )
        .await;
        app.put_mapping(&source, version_2()).await;
        app.login().await;
        let path = format!("/sources/{}", source.id);
        let (status, html) = app.page(&path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("replay/confirm"), "the source page offers it");

        let (status, html) = app
            .page(&format!("{path}/replay/confirm?status=resolved&since="))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains("This re-maps 1 resolved event of Web shop through version 2."),
            "{html}"
        );
        assert!(app.profile_by_email("ann@example.org").await["traits"]["city"].is_null());

        let csrf = csrf_in(&html).expect("csrf");
        let response = app
            .post_form(
                &format!("{path}/replay"),
                &[("csrf", &csrf), ("status", "resolved")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        app.wait_for_replay(&source).await;
        assert_eq!(
            app.profile_by_email("ann@example.org").await["traits"]["city"],
            "Paris"
        );
        let (_, html) = app.page(&path).await;
        assert!(
            html.contains("Replay of resolved events finished"),
            "{html}"
        );
    }
}

/// A mapping whose event name comes from `type`: an event without one fails.
fn strict_names() -> Value {
    json!({"event_name": "{{type}}", "email": "{{email}}"})
}

backend_tests! {
    #[tokio::test]
    async fn a_failed_event_names_the_version_that_failed_it_and_retries_with_the_current_one() {
        let app = spawn_app().await;
        let source = app.mapped_source("Shop", strict_names()).await;
        let failed = app
            .send_processed(
                &source.hook,
                &json!({"kind": "order", "email": "a@example.org"}),
            )
            .await;
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["failed_version"], 1);
        let other = app
            .send_processed(
                &source.hook,
                &json!({"kind": "refund", "email": "b@example.org"}),
            )
            .await;
        let id = failed["id"].as_str().unwrap();

        app.login().await;
        let (_, html) = app.page(&format!("/events/{id}")).await;
        assert!(html.contains("failed with v1"), "{html}");
        assert!(html.contains("Retry with the current version"), "{html}");

        // Version 2 names events from `kind`.
        app.put_mapping(
            &source,
            json!({"event_name": "{{kind}}", "email": "{{email}}"}),
        )
        .await;
        let csrf = csrf_in(&html).expect("csrf");
        let response = app
            .post_form(&format!("/events/{id}/retry"), &[("csrf", &csrf)])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.starts_with(&format!("/events/{id}")), "{location}");
        let (_, queued) = app.page(location).await;
        assert!(queued.contains("Retry queued"), "{queued}");
        let retried = app.wait_until_resolved(id).await;
        assert_eq!(retried["mapping_version"], 2);
        assert_eq!(retried["name"], "order");

        // The API does the same.
        let other_id = other["id"].as_str().unwrap();
        let response = app
            .api_send(
                Method::POST,
                &format!("/api/events/{other_id}/retry"),
                json!({}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["version"], 2);
        assert_eq!(app.wait_until_resolved(other_id).await["name"], "refund");
        let counts = app.api_json(&format!("/api/sources/{}", source.id)).await["counts"].clone();
        assert_eq!(
            (counts["failed"].as_u64(), counts["resolved"].as_u64()),
            (Some(0), Some(2))
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn an_event_of_a_deleted_source_offers_no_action_it_cannot_take() {
        let app = spawn_app().await;
        let source = app.mapped_source("Gone", strict_names()).await;
        let failed = app
            .send_processed(&source.hook, &json!({"email": "a@example.org"}))
            .await;
        assert_eq!(failed["status"], "failed");
        let id = failed["id"].as_str().unwrap();
        let response = app
            .api_send(
                Method::DELETE,
                &format!("/api/sources/{}", source.id),
                json!({}),
            )
            .await;
        assert!(response.status().is_success(), "{}", response.status());

        app.login().await;
        let (status, html) = app.page(&format!("/events/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("source of this event was deleted"), "{html}");
        assert!(!html.contains("Retry with the current version"), "{html}");
        assert!(
            !html.contains(&format!("href=\"/sources/{}\"", source.id)),
            "{html}"
        );

        let response = app
            .api_send(Method::POST, &format!("/api/events/{id}/retry"), json!({}))
            .await;
        let error = error_of(response, StatusCode::CONFLICT).await;
        assert!(error.contains("deleted"), "{error}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_refused_identifier_shows_as_identity_refused_once_not_as_a_plain_resolve() {
        let app = spawn_app().await;
        let source = app.mapped_source("Web", version_1()).await;
        let event = app
            .send_processed(
                &source.hook,
                &json!({"type": "visit", "email": "not-an-email", "anon": "v-123", "plan": "pro", "ts": "2026-01-01T10:00:00Z"}),
            )
            .await;
        assert_eq!(event["status"], "resolved");
        assert_eq!(
            event["identity_refused"].as_array().map(Vec::len),
            Some(1),
            "{event}"
        );
        let id = event["id"].as_str().unwrap();

        app.login().await;
        let (_, list) = app.page("/events").await;
        assert!(list.contains("resolved · identity refused"), "{list}");
        assert!(list.contains("invalid_email"), "{list}");

        let (_, html) = app.page(&format!("/events/{id}")).await;
        assert!(html.contains("resolved · identity refused"), "{html}");
        assert_eq!(
            html.matches("dropped: invalid_email").count(),
            1,
            "the refusal is said once: {html}"
        );
    }
}
