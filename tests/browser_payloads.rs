//! In headless Chromium: a marketer maps a Looker Look whose columns are
//! named `view.field` (`users.email`), from the schema table to a saved
//! mapping and a profile, without typing a template by hand.

mod common;

use common::browser::{click, log_in, wait_for, wait_for_text, Browser};
use common::*;
use fantoccini::{Client, Locator};
use serde_json::json;

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_looker_look_with_dotted_columns_maps_to_a_profile_from_the_dashboard() {
        let app = spawn_app().await;
        let Some(browser) = Browser::start().await else {
            return;
        };
        let b = browser.client.clone();
        let source = app.source_named("Looker orders").await;
        let rows = json!([
            {"users.email": "Looker.Ann@Example.com", "users.id": 7, "orders.id": 501},
            {"users.email": "looker.ann@example.com", "users.id": 7, "orders.id": 502}
        ]);
        let ids = app.send_ok(&source.hook, &rows).await;
        for id in &ids {
            app.processed_event(id).await;
        }

        log_in(&b, &app).await;
        b.goto(&app.url(&format!("/sources/{}", source.id)))
            .await
            .unwrap();
        the_schema_table_shows_the_template_to_type(&b).await;
        the_suggestion_fills_the_editor_and_previews_the_email(&b).await;
        save(&b).await;

        for id in &ids {
            let event = app.wait_until_resolved(id).await;
            assert_eq!(event["email"], "looker.ann@example.com", "{event}");
        }
        let profile = app.profile_by_email("looker.ann@example.com").await;
        assert_eq!(profile["event_count"], 2, "{profile}");
        b.goto(&app.url(&format!("/events/{}", ids[0])))
            .await
            .unwrap();
        wait_for_text(&b, ".head .badge", "resolved").await;
        click(&b, "dl.facts a.id[href^='/profiles/']").await;
        wait_for_text(&b, "#identities", "looker.ann@example.com").await;
        browser.close().await;
    }
}

async fn the_schema_table_shows_the_template_to_type(b: &Client) {
    let cells = b
        .find_all(Locator::Css("#schema code.template"))
        .await
        .unwrap();
    let mut templates = Vec::new();
    for cell in cells {
        templates.push(cell.text().await.unwrap());
    }
    assert!(
        templates.iter().any(|t| t == "{{[users.email]}}"),
        "{templates:?}"
    );
    assert!(
        !templates.iter().any(|t| t == "{{users.email}}"),
        "{templates:?}"
    );
}

async fn the_suggestion_fills_the_editor_and_previews_the_email(b: &Client) {
    click(b, "#use-suggestion").await;
    let email = wait_for(b, "#mapping-form input[name=email]").await;
    let value = email.prop("value").await.unwrap().unwrap_or_default();
    assert_eq!(
        value, "{{[users.email]}}",
        "the suggestion fills the editor"
    );
    let event_id = b
        .find(Locator::Css("#mapping-form input[name=event_id]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(event_id, "{{[orders.id]}}", "not the per-user id");
    click(b, "#preview-button").await;
    let result = wait_for(b, "#preview .result").await;
    let text = result.text().await.unwrap();
    assert!(text.contains("looker.ann@example.com"), "{text}");
    assert!(!text.contains("refused"), "{text}");
    let warnings = b
        .find_all(Locator::Css("#preview .mapping-warning"))
        .await
        .unwrap();
    assert!(warnings.is_empty(), "the suggestion reads every slot");
}

async fn save(b: &Client) {
    click(b, "#save-button").await;
    wait_for_text(b, "#saved", "Saved version 1").await;
    wait_for_text(b, "#replay-progress", "finished").await;
}

backend_tests! {
    /// Typing the dotted path the way it reads (`{{users.email}}`) is warned
    /// about on preview and after save, naming the template to use.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dotted_path_typed_as_nested_is_warned_about_in_the_dashboard() {
        let app = spawn_app().await;
        let Some(browser) = Browser::start().await else {
            return;
        };
        let b = browser.client.clone();
        let source = app.source_named("Looker").await;
        let id = app
            .send_ok(&source.hook, &json!([{"users.email": "c@example.com"}]))
            .await;
        app.processed_event(&id[0]).await;

        log_in(&b, &app).await;
        b.goto(&app.url(&format!("/sources/{}", source.id)))
            .await
            .unwrap();
        let email = wait_for(&b, "#mapping-form input[name=email]").await;
        email.clear().await.unwrap();
        email.send_keys("{{users.email}}").await.unwrap();
        click(&b, "#preview-button").await;
        let warning = wait_for_text(&b, "#preview .mapping-warning", "[users.email]").await;
        assert!(warning.contains("no sample has a value"), "{warning}");
        click(&b, "#save-button").await;
        wait_for_text(&b, "#saved", "Saved version 1").await;
        wait_for_text(&b, ".mapping-warning[data-slot=email]", "{{[users.email]}}").await;
        browser.close().await;
    }
}
