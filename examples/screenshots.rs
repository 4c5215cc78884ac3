//! Fills a server with fixture sources, events and errors, and saves a PNG
//! of each dashboard page into `docs/screenshots/`. Run by
//! `scripts/screenshots` (needs chromium and chromium-driver).
//!
//! Everything goes through the real pipeline: sources with mappings (a
//! preset, the API), events that resolve, fail or wait unmapped.

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
    let browser = Browser::start().await.expect(
        "chromium and chromedriver are needed: apt-get install -y chromium chromium-driver",
    );
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
        .for_element(Locator::Css("svg#activity-chart"))
        .await
        .expect("home page");
    shot("home.png").await;
    b.goto(&app.url("/events")).await.expect("events page");
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
    shot("source-created.png").await;
    // The mapping section of an unmapped source: schema and suggestion.
    b.goto(&app.url(&format!("/sources/{}#mapping", fixture.looker)))
        .await
        .expect("source page");
    b.wait()
        .for_element(Locator::Css("#schema"))
        .await
        .expect("schema table");
    shot("source.png").await;
    b.find(Locator::Css("#preview-button"))
        .await
        .expect("preview button")
        .click()
        .await
        .expect("preview");
    b.wait()
        .for_element(Locator::Css("#preview"))
        .await
        .expect("preview results");
    b.execute(
        "document.getElementById('preview').scrollIntoView()",
        vec![],
    )
    .await
    .expect("scroll");
    shot("mapping-preview.png").await;
    b.goto(&app.url(&format!("/profiles/{}", fixture.profile)))
        .await
        .expect("profile page");
    shot("profile.png").await;
    browser.close().await;
}

struct Fixture {
    resolved: String,
    profile: String,
    looker: String,
}

/// Sends a body with the shop's api key; returns the event ids.
async fn send_shop(app: &TestApp, hook: &str, body: &Value) -> Vec<String> {
    let response = app
        .client
        .post(app.url(hook))
        .header("x-shop-key", "k-123456789")
        .json(body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 202, "shop order accepted");
    ids_of(&response.json().await.expect("json"))
}

/// Real sources through the real pipeline: a preset-mapped shop (resolved,
/// attached and failed orders), newsletter signups mapped by the API that
/// join the same profile, and an unmapped Looker source for the editor.
async fn fill(app: &TestApp) -> Fixture {
    let shop = app
        .create_source(json!({"name": "Shopify orders", "preset": "shopify_order", "api_key": {"header": "x-shop-key", "value": "k-123456789"}}))
        .await;
    let news = app.source_named("Newsletter signups").await;
    let put = app
        .api_send(
            reqwest::Method::PUT,
            &format!("/api/sources/{}/mapping", news.id),
            json!({"event_name": "{{action}}", "email": "{{email}}", "properties": ["list", "source"], "traits": {"newsletter": "{{list}}"}}),
        )
        .await;
    assert_eq!(put.status(), 200, "newsletter mapping saved");
    let looker = app
        .create_source(json!({"name": "Looker weekly", "records_path": "data"}))
        .await;

    let fixture = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/presets/shopify_order.json"),
    )
    .expect("shopify fixture");
    let order: Value = serde_json::from_str(&fixture).expect("fixture json");
    let mut ids = send_shop(app, &shop.hook, &order).await;
    let resolved = ids[0].clone();
    let mut second = order.clone();
    second["id"] = json!(820982911946154509u64);
    second["name"] = json!("#10000");
    second["total_price"] = json!("58.00");
    second["created_at"] = json!("2024-03-04T09:30:00-05:00");
    ids.extend(send_shop(app, &shop.hook, &second).await);
    let mut late = order.clone();
    late["id"] = json!(820982911946154510u64);
    late["created_at"] = json!("the day after tomorrow");
    ids.extend(send_shop(app, &shop.hook, &late).await);

    for (email, list) in [
        ("jon@example.com", "weekly"),
        ("grace@example.com", "weekly"),
        ("linus@example.com", "product"),
    ] {
        let body =
            json!({"action": "Subscribed", "email": email, "list": list, "source": "footer"});
        ids.extend(app.send_ok(&news.hook, &body).await);
    }
    // No `action`: the event name renders empty, so this one fails.
    let body = json!({"email": "ada@example.com", "list": "weekly", "source": "popup"});
    ids.extend(app.send_ok(&news.hook, &body).await);
    let looker_body = json!({"data": [
        {"user_id": "u-17", "email": "ada@example.com", "plan": "pro", "seats": 12},
        {"user_id": "u-18", "email": "grace@example.com", "plan": "<script>alert(1)</script>", "seats": 3}
    ]});
    ids.extend(app.send_ok(&looker.hook, &looker_body).await);
    for id in &ids {
        let event = app.processed_event(id).await;
        println!("event {id}: {}", event["status"]);
    }
    let profile = app.event(&resolved).await["profile_id"]
        .as_str()
        .expect("the order joined a profile")
        .to_string();
    // Refusals for the error log.
    app.send_raw(&news.hook, "application/json", "{\"email\": ")
        .await;
    app.send(&shop.hook, &json!({"id": 1})).await;
    Fixture {
        resolved,
        profile,
        looker: looker.id,
    }
}
