//! The error log, told as support staff's stories: repeated refusals read
//! as one group with a count, errors and warnings are told apart, and the
//! page shows the groups, through the real server over HTTP.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Three `invalid_json` refusals and one `empty_body` at `shop`, one
/// `invalid_json` at `blog`, and a warning (a placeholder email) at `web`.
async fn a_noisy_week(app: &TestApp) -> (TestSource, TestSource, TestSource) {
    let shop = app.source_named("Shop").await;
    let blog = app.source_named("Blog").await;
    for _ in 0..3 {
        let r = app.send_raw(&shop.hook, "application/json", "{nope").await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    let r = app.send_raw(&shop.hook, "application/json", " ").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app.send_raw(&blog.hook, "application/json", "[1,").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let web = app
        .mapped_source("Web", json!({"event_name": "page", "email": "{{email}}"}))
        .await;
    let event = app
        .send_processed(&web.hook, &json!({"email": "null"}))
        .await;
    assert_eq!(event["status"], "resolved");
    (shop, blog, web)
}

fn group<'a>(groups: &'a [Value], source: &TestSource, code: &str) -> &'a Value {
    groups
        .iter()
        .find(|g| g["source_id"] == source.id.as_str() && g["code"] == code)
        .unwrap_or_else(|| panic!("no group {code} at {} in {groups:?}", source.id))
}

backend_tests! {
    #[tokio::test]
    async fn repeated_errors_are_grouped_by_source_and_code_with_counts_and_when() {
        let app = spawn_app().await;
        let (shop, blog, _) = a_noisy_week(&app).await;
        let body = app.api_json("/api/errors/groups").await;
        assert_eq!(body["complete"], true, "{body}");
        let groups = body["groups"].as_array().expect("groups").clone();
        let shop_json = group(&groups, &shop, "invalid_json");
        assert_eq!(shop_json["count"], 3);
        assert_eq!(shop_json["level"], "error");
        assert_eq!(shop_json["stage"], "decode");
        assert!(shop_json["first_seen"].as_str() <= shop_json["last_seen"].as_str());
        assert_eq!(group(&groups, &shop, "empty_body")["count"], 1);
        assert_eq!(group(&groups, &blog, "invalid_json")["count"], 1);

        // The same filters as the list.
        let only_shop = app
            .api_json(&format!("/api/errors/groups?source_id={}", shop.id))
            .await;
        let codes: Vec<&str> = only_shop["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes.len(), 2, "{only_shop}");
        assert!(codes.contains(&"invalid_json") && codes.contains(&"empty_body"));
    }
}

backend_tests! {
    #[tokio::test]
    async fn errors_and_warnings_are_filtered_by_level_and_a_bad_level_is_refused() {
        let app = spawn_app().await;
        let (_, _, web) = a_noisy_week(&app).await;
        let warnings = app.errors("level=warning").await;
        assert!(!warnings.is_empty());
        assert!(
            warnings.iter().all(|e| e["level"] == "warning"),
            "{warnings:?}"
        );
        assert!(warnings.iter().any(|e| e["source_id"] == web.id.as_str()));
        let errors = app.errors("level=error").await;
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors.iter().all(|e| e["level"] == "error"));
        let groups = app.api_json("/api/errors/groups?level=warning").await;
        assert!(groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["level"] == "warning"));

        for path in ["/api/errors?level=fatal", "/api/errors/groups?level=ERROR"] {
            let r = app.api_get(path).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["code"], "invalid_query", "{path}: {body}");
            assert!(body["error"].as_str().unwrap().contains("level"), "{body}");
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_error_page_shows_groups_by_default_and_the_raw_list_on_request() {
        let app = spawn_app().await;
        let (shop, _, _) = a_noisy_week(&app).await;
        app.login().await;
        let (status, html) = app.page("/errors").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("id=\"error-groups\""), "{html}");
        let row = html
            .split("<tr>")
            .find(|row| row.contains(">Shop</a>") && row.contains("<code>invalid_json</code>"))
            .expect("a group row for Shop's invalid_json");
        assert!(row.contains(">3</a>"), "the count in {row}");
        assert!(html.contains("id=\"view-list\""), "a toggle to the list");
        assert!(html.contains("name=\"level\""), "a level filter");

        let (_, list) = app.page("/errors?view=list").await;
        assert!(list.contains("id=\"errors\""));
        assert_eq!(list.matches("<code>invalid_json</code>").count(), 4);

        let (_, warnings) = app.page("/errors?level=warning").await;
        assert!(!warnings.contains("<code>invalid_json</code>"));
        let (_, shop_only) = app
            .page(&format!(
                "/errors?view=list&source_id={}&code=invalid_json",
                shop.id
            ))
            .await;
        assert_eq!(shop_only.matches("<code>invalid_json</code>").count(), 3);
    }
}
