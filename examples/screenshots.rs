//! Fills a server with fixture sources, events and errors, and saves a PNG
//! of each dashboard page into `docs/screenshots/`. Run by
//! `scripts/screenshots` (needs chromium and chromium-driver).
//!
//! Until the mapping and identity modules land, the resolved and failed
//! events are written straight into the store so the pages show every state.

#[path = "../tests/common/mod.rs"]
mod common;

use common::browser::Browser;
use common::*;
use fantoccini::Locator;
use serde_json::{json, Value};
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
    Fixture { resolved }
}
