//! In headless Chromium: the home page's chart (issue 16, "pictures").
//! Log in, send events to two sources, see the bars, switch the window,
//! pick one source and see only its counts.

mod common;

use common::browser::{click, log_in, wait_for, Browser};
use common::*;
use fantoccini::{Client, Locator};
use serde_json::json;
use std::time::Duration;

/// The chart's own `<title>` (its summary of the window's counts); read as
/// `textContent`, since an SVG title is not rendered text.
async fn chart_summary(b: &Client) -> String {
    let title = wait_for(b, "svg#activity-chart > title").await;
    title.prop("textContent").await.unwrap().unwrap_or_default()
}

/// Reloads `/` until the chart summary contains `needle` (the processor
/// counts shortly after the 202s).
async fn wait_for_summary(b: &Client, needle: &str) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        last = chart_summary(b).await;
        if last.contains(needle) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.refresh().await.unwrap();
    }
    panic!("the chart did not say `{needle}`; it says: {last}");
}

async fn send(app: &TestApp, source: &TestSource, body: serde_json::Value, n: usize) {
    for _ in 0..n {
        app.send_ok(&source.hook, &body).await;
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_home_page_charts_events_by_window_and_by_source() {
        let app = spawn_app().await;
        let Some(browser) = Browser::start().await else {
            return;
        };
        let b = browser.client.clone();
        let mapping = json!({"event_name": "{{type}}", "email": "{{email}}"});
        let shop = app.mapped_source("Shop", mapping.clone()).await;
        let crm = app.mapped_source("CRM", mapping).await;
        log_in(&b, &app).await;
        send(
            &app,
            &shop,
            json!({"type": "order", "email": "a@example.org"}),
            3,
        )
        .await;
        send(&app, &shop, json!({"email": "b@example.org"}), 1).await;
        send(
            &app,
            &crm,
            json!({"type": "signup", "email": "c@example.org"}),
            2,
        )
        .await;

        b.goto(&app.url("/")).await.unwrap();
        let summary = wait_for_summary(&b, "received 6, resolved 5, failed 1").await;
        assert!(summary.contains("the last day, by hour"), "{summary}");
        let bars = b
            .find_all(Locator::Css("svg#activity-chart rect.bar"))
            .await
            .unwrap();
        assert_eq!(bars.len(), 3, "received, resolved and failed in this hour");

        // The window switch: the last hour, by minute.
        click(&b, "nav.windows a[data-window=minute]").await;
        wait_for(&b, "svg#activity-chart[data-window=minute]").await;
        let summary = chart_summary(&b).await;
        assert!(summary.contains("the last hour, by minute"), "{summary}");
        assert!(summary.contains("received 6,"), "{summary}");
        let groups = b
            .find_all(Locator::Css("svg#activity-chart g.bucket"))
            .await
            .unwrap();
        assert_eq!(groups.len(), 60);

        // One source: only its counts, in the window chosen.
        b.find(Locator::Css("#activity-filters select[name=source_id]"))
            .await
            .unwrap()
            .select_by_value(&shop.id)
            .await
            .unwrap();
        click(&b, "#activity-filters button[type=submit]").await;
        wait_for(&b, "svg#activity-chart[data-window=minute]").await;
        let summary = wait_for_summary(&b, "received 4, resolved 3, failed 1").await;
        assert!(!summary.contains("received 6"), "{summary}");
        let heading = wait_for(&b, "main h1").await.text().await.unwrap();
        assert_eq!(heading, "Shop");
        let url = b.current_url().await.unwrap();
        assert!(url.query().unwrap_or("").contains(&shop.id), "{url}");
        browser.close().await;
    }
}
