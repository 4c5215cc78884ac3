//! End to end in headless Chromium: the dashboard as a marketer uses it,
//! JavaScript on. Each step is a function over a shared `Story`, so steps
//! for mapping, replay and profiles can be appended after the merge.

mod common;

use common::browser::Browser;
use common::*;
use fantoccini::{Client, Locator};
use serde_json::json;
use std::time::Duration;

/// What the steps share.
struct Story {
    app: TestApp,
    browser: Client,
    webhook_url: String,
    event_id: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marketer_connects_a_source_and_watches_events_arrive() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    let mut story = Story {
        app,
        browser: browser.client.clone(),
        webhook_url: String::new(),
        event_id: String::new(),
    };
    log_in(&story).await;
    create_source(&mut story).await;
    watch_an_event_arrive(&mut story).await;
    open_the_event(&story).await;
    browser.close().await;
}

async fn log_in(story: &Story) {
    let b = &story.browser;
    b.goto(&story.app.url("/")).await.unwrap();
    assert!(b.current_url().await.unwrap().path().ends_with("/login"));
    b.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    b.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("table#events"))
        .await
        .expect("the events page after login");
}

async fn create_source(story: &mut Story) {
    let b = &story.browser;
    b.find(Locator::LinkText("Sources"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let name = b
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#create input[name=name]"))
        .await
        .unwrap();
    name.send_keys("Checkout").await.unwrap();
    b.find(Locator::Css("#create button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let url = b
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#webhook-url"))
        .await
        .expect("the webhook URL after create");
    story.webhook_url = url.prop("value").await.unwrap().expect("a value");
    assert!(story.webhook_url.contains("/hooks/"));
    let copy = b.find(Locator::Css("button[data-copy]")).await.unwrap();
    assert!(
        copy.is_displayed().await.unwrap(),
        "JS shows the copy button"
    );
}

async fn watch_an_event_arrive(story: &mut Story) {
    let b = &story.browser;
    b.goto(&story.app.url("/")).await.unwrap();
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#live:not([hidden])"))
        .await
        .expect("the live tail connects");
    let response = story
        .app
        .client
        .post(&story.webhook_url)
        .json(&json!({"order": {"id": "A-1001", "email": "ada@example.com"}, "note": "<b>hi</b>"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    story.event_id = ids_of(&body).remove(0);
    let row = format!("tr[data-id=\"{}\"]", story.event_id);
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&row))
        .await
        .expect("the event appears in the live tail without a reload");
}

async fn open_the_event(story: &Story) {
    let b = &story.browser;
    let link = format!("tr[data-id=\"{}\"] a.id", story.event_id);
    b.find(Locator::Css(&link))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let payload = b
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#payload"))
        .await
        .unwrap();
    let text = payload.text().await.unwrap();
    assert!(text.contains("A-1001"), "{text}");
    assert!(
        text.contains("<b>hi</b>"),
        "shown as text, not markup: {text}"
    );
}
