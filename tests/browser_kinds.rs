//! In headless Chromium: the identifier kinds page (issue 17). Log in,
//! follow the nav link, define a kind through the form and see it listed
//! in priority order; disable it with its button.

mod common;

use common::browser::{click, log_in, wait_for, wait_for_text, Browser};
use common::*;
use fantoccini::{Client, Locator};

/// The kind names in the table, top to bottom.
async fn listed_kinds(b: &Client) -> Vec<String> {
    let mut names = Vec::new();
    for row in b.find_all(Locator::Css("#kinds tbody tr")).await.unwrap() {
        names.push(row.attr("data-kind").await.unwrap().unwrap_or_default());
    }
    names
}

async fn fill(b: &Client, css: &str, text: &str) {
    let field = wait_for(b, css).await;
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kind_defined_through_the_form_is_listed_in_priority_order() {
        let app = spawn_app().await;
        let Some(browser) = Browser::start().await else {
            return;
        };
        let b = browser.client.clone();
        log_in(&b, &app).await;
        click(&b, "nav a[href='/identity/kinds']").await;
        wait_for_text(&b, "h1", "Identifier kinds").await;
        assert_eq!(
            listed_kinds(&b).await,
            ["external_id", "email", "visitor_id"]
        );

        fill(&b, "#create-kind input[name=name]", "stripe_customer_id").await;
        fill(&b, "#create-kind input[name=priority]", "2").await;
        fill(&b, "#create-kind input[name=limit]", "1").await;
        click(&b, "#create-kind-button").await;
        wait_for(&b, "#kinds tr[data-kind=stripe_customer_id]").await;
        assert_eq!(
            listed_kinds(&b).await,
            ["external_id", "stripe_customer_id", "email", "visitor_id"]
        );

        // Without a priority: just above visitor_id.
        fill(&b, "#create-kind input[name=name]", "phone").await;
        click(&b, "#create-kind-button").await;
        wait_for(&b, "#kinds tr[data-kind=phone]").await;
        assert_eq!(
            listed_kinds(&b).await,
            [
                "external_id",
                "stripe_customer_id",
                "email",
                "phone",
                "visitor_id"
            ]
        );

        click(
            &b,
            "#kinds tr[data-kind=phone] form[action$='/enabled'] button",
        )
        .await;
        wait_for_text(&b, "#kinds tr[data-kind=phone]", "disabled").await;
        let body = app.api_json("/api/identity/kinds").await;
        assert_eq!(body["kinds"][3]["enabled"], false);
        browser.close().await;
    }
}
