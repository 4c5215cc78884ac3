//! End to end in headless Chromium: the dashboard as a marketer uses it,
//! JavaScript on. Each step is a function over a shared `Story`: connect a
//! source, watch an event arrive, map it from the suggestion, replay, and
//! follow the event to its profile.

mod common;

use common::browser::{click, log_in, wait_for, wait_for_text, Browser};
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

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_marketer_connects_a_source_and_watches_events_arrive() {
        let app = spawn_app().await;
        let Some(browser) = Browser::start().await else {
            return;
        };
        let mut story = Story {
            app,
            browser: browser.client.clone(),
            webhook_url: String::new(),
            event_id: String::new(),
        };
        log_in(&story.browser, &story.app).await;
        create_source(&mut story).await;
        watch_an_event_arrive(&mut story).await;
        open_the_event(&story).await;
        see_the_schema_on_the_source_page(&story).await;
        use_the_suggestion_and_preview(&story).await;
        save_and_replay(&story).await;
        follow_the_event_to_its_profile(&story).await;
        browser.close().await;
    }
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
    b.goto(&story.app.url("/events")).await.unwrap();
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

async fn see_the_schema_on_the_source_page(story: &Story) {
    let b = &story.browser;
    click(b, "dl.facts a[href^='/sources/']").await;
    let schema = wait_for(b, "#schema").await;
    let text = schema.text().await.unwrap();
    assert!(text.contains("order.email"), "{text}");
    assert!(text.contains("100.0%"), "{text}");
}

async fn use_the_suggestion_and_preview(story: &Story) {
    let b = &story.browser;
    click(b, "#use-suggestion").await;
    let email = wait_for(b, "#mapping-form input[name=email]").await;
    let value = email.prop("value").await.unwrap().unwrap_or_default();
    assert_eq!(value, "{{order.email}}", "the suggestion fills the editor");
    click(b, "#preview-button").await;
    let result = wait_for(b, "#preview .result").await;
    let text = result.text().await.unwrap();
    assert!(text.contains("ada@example.com"), "{text}");
    assert!(text.contains("create"), "the resolver would create: {text}");
}

async fn save_and_replay(story: &Story) {
    let b = &story.browser;
    click(b, "#save-button").await;
    wait_for_text(b, "#saved", "Saved version 1").await;
    // Saving the first version replays the unmapped event; the page's poll
    // reports progress without a reload.
    wait_for_text(b, "#replay-progress", "finished").await;
    click(b, "#replay-failed").await;
    wait_for_text(b, "#replay-progress", "failed events finished").await;
}

async fn follow_the_event_to_its_profile(story: &Story) {
    let b = &story.browser;
    b.goto(&story.app.url(&format!("/events/{}", story.event_id)))
        .await
        .unwrap();
    wait_for_text(b, ".head .badge", "resolved").await;
    click(b, "dl.facts a.id[href^='/profiles/']").await;
    let identities = wait_for(b, "#identities").await;
    let text = identities.text().await.unwrap();
    assert!(text.contains("ada@example.com"), "{text}");
    let history = wait_for(b, "#history").await.text().await.unwrap();
    assert!(history.contains("create"), "{history}");
}
