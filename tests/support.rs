//! What support staff need to find a customer (issue 16): event search by
//! email whatever the event's status, by name, by an order number and by
//! date; a browsable list of profiles; merge and erase from the profile
//! page; the refusal that split two profiles shown on both.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn ids_in(body: &Value) -> Vec<String> {
    body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect()
}

async fn search(app: &TestApp, query: &str) -> Value {
    app.api_json(&format!("/api/events?{query}")).await
}

/// A source whose mapping fails every event without a `type` (event_name
/// renders empty), and one with no mapping (its events stay unmapped).
async fn failing_and_unmapped(app: &TestApp) -> (TestSource, TestSource) {
    let failing = app
        .mapped_source(
            "Shop",
            json!({"event_name": "{{type}}", "email": "{{email}}"}),
        )
        .await;
    let unmapped = app.source_named("Looker").await;
    (failing, unmapped)
}

#[tokio::test]
async fn search_by_email_finds_failed_and_unmapped_events() {
    let app = spawn_app().await;
    let (failing, unmapped) = failing_and_unmapped(&app).await;
    let failed = app
        .send_processed(&failing.hook, &json!({"email": "Ada@Example.org"}))
        .await;
    assert_eq!(failed["status"], "failed");
    let waiting = app
        .send_processed(
            &unmapped.hook,
            &json!({"rows": [{"users.email": "ada@example.org", "n": 3}]}),
        )
        .await;
    assert_eq!(waiting["status"], "unmapped");
    app.send_processed(&unmapped.hook, &json!({"users.email": "bob@example.org"}))
        .await;

    // Normalised as a profile lookup is: trimmed, case ignored.
    let found = search(&app, "q=%20%20ADA@example.ORG%20").await;
    let mut ids = ids_in(&found);
    ids.sort();
    let mut expected = vec![
        failed["id"].as_str().unwrap().to_string(),
        waiting["id"].as_str().unwrap().to_string(),
    ];
    expected.sort();
    assert_eq!(ids, expected, "{found}");
    assert_eq!(found["scan_truncated"], false, "{found}");
}

#[tokio::test]
async fn search_by_event_name_and_by_an_exact_order_number() {
    let app = spawn_app().await;
    let shop = app
        .mapped_source(
            "Shop",
            json!({"event_name": "{{type}}", "email": "{{email}}"}),
        )
        .await;
    let placed = app
        .send_processed(
            &shop.hook,
            &json!({"type": "Order Placed", "email": "a@x.org", "order": {"number": 10}}),
        )
        .await;
    let refunded = app
        .send_processed(
            &shop.hook,
            &json!({"type": "Order Refunded", "email": "a@x.org", "order": {"number": 100}, "note": "was 10 items"}),
        )
        .await;
    let placed_id = placed["id"].as_str().unwrap().to_string();
    let refunded_id = refunded["id"].as_str().unwrap().to_string();

    let by_name = search(&app, "name=order%20placed").await;
    assert_eq!(ids_in(&by_name), vec![placed_id.clone()], "{by_name}");

    // A whole scalar value, not a substring of the JSON text.
    let by_order = search(&app, "q=10").await;
    assert_eq!(ids_in(&by_order), vec![placed_id.clone()], "{by_order}");
    let by_other = search(&app, "q=100").await;
    assert_eq!(ids_in(&by_other), vec![refunded_id], "{by_other}");
    let both = search(&app, "q=10&name=Order%20Refunded").await;
    assert!(ids_in(&both).is_empty(), "{both}");
}

#[tokio::test]
async fn a_date_range_filters_on_received_time_and_a_bad_date_is_refused() {
    let app = spawn_app().await;
    let source = app.source_named("Looker").await;
    let event = app
        .send_processed(&source.hook, &json!({"email": "a@x.org"}))
        .await;
    let id = event["id"].as_str().unwrap().to_string();
    let today = chrono::Utc::now().date_naive();
    let yesterday = today.pred_opt().unwrap();
    let tomorrow = today.succ_opt().unwrap();

    let today_only = search(&app, &format!("from={today}&to={today}")).await;
    assert_eq!(ids_in(&today_only), vec![id.clone()], "{today_only}");
    let until_yesterday = search(&app, &format!("to={yesterday}")).await;
    assert!(ids_in(&until_yesterday).is_empty(), "{until_yesterday}");
    let from_tomorrow = search(&app, &format!("from={tomorrow}")).await;
    assert!(ids_in(&from_tomorrow).is_empty(), "{from_tomorrow}");
    let received: chrono::DateTime<chrono::Utc> =
        event["received_at"].as_str().unwrap().parse().unwrap();
    let since = (received - chrono::Duration::seconds(1)).to_rfc3339();
    let rfc = app
        .client
        .get(app.url("/api/events"))
        .query(&[("from", since.as_str())])
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let rfc: Value = rfc.json().await.unwrap();
    assert_eq!(ids_in(&rfc), vec![id], "{rfc}");

    let bad = app.api_get("/api/events?from=yesterday").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["code"], "invalid_query", "{body}");
    assert!(body["error"].as_str().unwrap().contains("from"), "{body}");
}

#[tokio::test]
async fn a_search_that_hits_its_scan_bound_says_so_and_can_continue() {
    let app = spawn_app().await;
    let source = app.source_named("Looker").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let event = app
            .send_processed(&source.hook, &json!({"email": format!("u{i}@x.org")}))
            .await;
        ids.push(event["id"].as_str().unwrap().to_string());
    }
    // The oldest matches; a scan of two events stops before it.
    let first = search(&app, "q=u0@x.org&scan=2").await;
    assert!(ids_in(&first).is_empty(), "{first}");
    assert_eq!(first["scan_truncated"], true, "{first}");
    assert_eq!(first["next"], ids[3], "{first}");
    let rest = search(&app, &format!("q=u0@x.org&before={}", ids[3])).await;
    assert_eq!(ids_in(&rest), vec![ids[0].clone()], "{rest}");
    assert_eq!(rest["scan_truncated"], false, "{rest}");
}

#[tokio::test]
async fn the_events_page_searches_and_shows_the_event_time() {
    let app = spawn_app().await;
    let (failing, _) = failing_and_unmapped(&app).await;
    let shop = app
        .mapped_source(
            "Orders",
            json!({"event_name": "{{type}}", "email": "{{email}}", "timestamp": "{{ts}}"}),
        )
        .await;
    app.send_processed(
        &shop.hook,
        &json!({"type": "Order Placed", "email": "zoe@x.org", "ts": "2025-06-01T12:34:56Z"}),
    )
    .await;
    let failed = app
        .send_processed(&failing.hook, &json!({"email": "kim@x.org"}))
        .await;
    app.login().await;

    let (status, html) = app.page("/events").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Event time (UTC)"), "{html}");
    assert!(
        html.contains("2025-06-01 12:34:56"),
        "the mapped time is shown"
    );

    let (_, found) = app.page("/events?q=KIM@x.org").await;
    assert!(found.contains(failed["id"].as_str().unwrap()), "{found}");
    assert!(
        !found.contains("2025-06-01 12:34:56"),
        "zoe's event is not listed"
    );
    let (_, named) = app.page("/events?name=order+placed&from=2000-01-01").await;
    assert!(named.contains("2025-06-01 12:34:56"), "{named}");
    assert!(!named.contains(failed["id"].as_str().unwrap()));
    let (status, bad) = app.page("/events?from=soon").await;
    assert_eq!(status, StatusCode::OK);
    assert!(bad.contains("id=\"bad-range\""), "{bad}");
}
