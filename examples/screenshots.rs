//! Fills a server with fixture sources, events and errors, and saves a PNG
//! of each dashboard page into `docs/screenshots/`. Run by
//! `scripts/screenshots` (needs chromium and chromium-driver).
//!
//! Until the mapping and identity modules land, the resolved and failed
//! events are written straight into the store so the pages show every state.

#[path = "../tests/common/mod.rs"]
mod common;

use chrono::Utc;
use common::browser::Browser;
use common::*;
use fantoccini::Locator;
use inlet::ids::{EventId, ProfileId};
use inlet::model::{ErrorEntry, EventState, EventStatus, Level, MappedEvent, Stage};
use inlet::store::events::StateUpdate;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&out).expect("screenshot dir");
    let app = spawn_app().await;
    let fixture = fill(&app).await;
    let browser = Browser::start().await;
    let b = &browser.client;

    let shot = |name: &'static str| {
        let out = out.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let png = b.screenshot().await.expect("screenshot");
            std::fs::write(out.join(name), png).expect("write png");
            println!("saved docs/screenshots/{name}");
        }
    };

    b.goto(&app.url("/login")).await.expect("login page");
    shot("login.png").await;
    b.find(Locator::Css("#token"))
        .await
        .expect("token field")
        .send_keys(ADMIN_TOKEN)
        .await
        .expect("type");
    b.find(Locator::Css("form button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("log in");
    b.wait()
        .for_element(Locator::Css("table#events"))
        .await
        .expect("events page");
    shot("events.png").await;
    b.goto(&app.url(&format!("/events/{}", fixture.resolved)))
        .await
        .expect("event page");
    shot("event.png").await;
    b.goto(&app.url("/errors")).await.expect("errors page");
    shot("errors.png").await;
    b.goto(&app.url("/sources")).await.expect("sources page");
    shot("sources.png").await;
    // A source right after create: the webhook URL shown once.
    b.find(Locator::Css("#create input[name=name]"))
        .await
        .expect("name field")
        .send_keys("Typeform leads")
        .await
        .expect("type");
    b.find(Locator::Css("#create button[type=submit]"))
        .await
        .expect("create")
        .click()
        .await
        .expect("submit");
    b.wait()
        .for_element(Locator::Css("#webhook-url"))
        .await
        .expect("source page");
    shot("source.png").await;
    browser.close().await;
}

struct Fixture {
    resolved: String,
}

async fn fill(app: &TestApp) -> Fixture {
    let shop = app
        .create_source(json!({"name": "Shopify orders", "api_key": {"header": "x-shop-key", "value": "k-123456789"}}))
        .await;
    let news = app.source_named("Newsletter signups").await;
    let looker = app
        .create_source(json!({"name": "Looker weekly", "records_path": "data"}))
        .await;
    let mut ids = Vec::new();
    for (i, email) in ["ada@example.com", "grace@example.com", "linus@example.com"]
        .iter()
        .enumerate()
    {
        let body = json!({"email": email, "list": "weekly", "source": "footer", "n": i});
        ids.extend(app.send_ok(&news.hook, &body).await);
    }
    let looker_body = json!({"data": [{"user_id": "u-17", "plan": "pro"}, {"user_id": "u-18", "plan": "<script>alert(1)</script>"}]});
    ids.extend(app.send_ok(&looker.hook, &looker_body).await);
    let order = json!({"id": 4521, "customer": {"email": "ada@example.com", "id": "c-88"}, "total_price": "129.00", "currency": "EUR", "line_items": [{"sku": "TEE-1", "qty": 2}]});
    let resolved = app
        .client
        .post(app.url(&shop.hook))
        .header("x-shop-key", "k-123456789")
        .json(&order)
        .send()
        .await
        .expect("send");
    let resolved: Value = resolved.json().await.expect("json");
    let resolved = ids_of(&resolved).remove(0);
    let failed_order = json!({"id": 4522, "customer": {"id": "c-91"}, "total_price": "oops"});
    let failed = app
        .client
        .post(app.url(&shop.hook))
        .header("x-shop-key", "k-123456789")
        .json(&failed_order)
        .send()
        .await
        .expect("send");
    let failed: Value = failed.json().await.expect("json");
    let failed = ids_of(&failed).remove(0);
    for id in ids.iter().chain([&resolved, &failed]) {
        app.processed_event(id).await;
    }
    // Refusals for the error log.
    app.send_raw(&news.hook, "application/json", "{\"email\": ")
        .await;
    app.send(&shop.hook, &json!({"id": 1})).await;
    pretend_processed(app, &resolved, &failed);
    Fixture { resolved }
}

/// Writes a resolved and a failed state, as the mapping and identity modules
/// will once merged.
fn pretend_processed(app: &TestApp, resolved: &str, failed: &str) {
    let store = &app.state.store;
    let resolved: EventId = resolved.parse().expect("id");
    let failed: EventId = failed.parse().expect("id");
    let source = store
        .event(resolved)
        .expect("read")
        .expect("event")
        .raw
        .source_id;
    let mapped = MappedEvent {
        name: "Order placed".into(),
        visitor_id: None,
        email: Some("ada@example.com".into()),
        external_id: Some("c-88".into()),
        event_id: Some("4521".into()),
        timestamp: Utc::now(),
        properties: json!({"total_price": "129.00", "currency": "EUR", "items": 2})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        traits: Default::default(),
        idempotency_key: Some("4521".into()),
        mapping_version: 1,
    };
    let updates = [
        StateUpdate {
            event_id: resolved,
            state: EventState {
                status: Some(EventStatus::Resolved),
                processed_at: Some(Utc::now()),
                mapped: Some(mapped),
                profile_id: Some(ProfileId::new()),
                resolution: Some("attach".into()),
                ..Default::default()
            },
        },
        StateUpdate {
            event_id: failed,
            state: EventState {
                status: Some(EventStatus::Failed),
                processed_at: Some(Utc::now()),
                errors: vec!["timestamp: `{{created_at}}` is missing in the record".into()],
                ..Default::default()
            },
        },
    ];
    store
        .commit_batch(&updates, None, &HashMap::new())
        .expect("commit");
    app.state
        .counters
        .record(source, Some(EventStatus::Unmapped), EventStatus::Resolved);
    app.state
        .counters
        .record(source, Some(EventStatus::Unmapped), EventStatus::Failed);
    let entry = ErrorEntry::new(
        Some(source),
        Stage::Map,
        Level::Error,
        "template_missing",
        "timestamp: `{{created_at}}` is missing in the record; map another field or remove the slot",
    )
    .with_excerpt(Some("{\"id\":4522,\"customer\":{\"id\":\"c-91\"},\"total_price\":\"oops\"}".into()))
    .with_event(failed);
    store.log_error(&entry).expect("log");
}
