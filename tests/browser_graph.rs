//! In headless Chromium: the profile page's "How this profile was joined"
//! (issue 17, "Explained merges"). The graph is drawn (a real box on the
//! page, not an empty element) and its merge edge is a working link to the
//! event that merged the two profiles.

mod common;

use common::browser::{click, log_in, wait_for, Browser};
use common::*;
use serde_json::json;

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_merge_edge_of_the_profile_graph_opens_the_event_that_merged_them() {
        let app = spawn_app().await;
        let Some(browser) = Browser::start().await else {
            return;
        };
        let b = browser.client.clone();
        let source = app
            .mapped_source(
                "Web",
                json!({"event_name": "{{type}}", "visitor_id": "{{anon}}", "email": "{{email}}"}),
            )
            .await;
        app.send_processed(&source.hook, &json!({"type": "view", "anon": "v-1"}))
            .await;
        app.send_processed(&source.hook, &json!({"type": "buy", "email": "ann@x.org"}))
            .await;
        let joiner = app
            .send_processed(
                &source.hook,
                &json!({"type": "login", "anon": "v-1", "email": "ann@x.org"}),
            )
            .await;
        assert_eq!(joiner["resolution"], "merge");
        let live = app.profile_by_email("ann@x.org").await;
        let joiner_id = joiner["id"].as_str().unwrap().to_string();

        log_in(&b, &app).await;
        b.goto(&app.url(&format!("/profiles/{}", live["id"].as_str().unwrap())))
            .await
            .unwrap();
        let svg = wait_for(&b, "svg#profile-graph-svg").await;
        let (_, _, width, height) = svg.rectangle().await.unwrap();
        assert!(width > 100.0 && height > 40.0, "drawn: {width}x{height}");
        let boxes = b
            .find_all(fantoccini::Locator::Css("svg#profile-graph-svg g.node"))
            .await
            .unwrap();
        assert_eq!(boxes.len(), 2, "the live profile and the one merged in");

        click(
            &b,
            "svg#profile-graph-svg a[href^='/events/'] text.merge-label",
        )
        .await;
        wait_for(&b, "main h1").await;
        let url = b.current_url().await.unwrap();
        assert_eq!(url.path(), format!("/events/{joiner_id}"), "{url}");
        browser.close().await;
    }
}
