//! Identifier kinds of the team's own, through the real server: defining
//! them (`/api/identity/kinds`), mapping them, the presets that use them,
//! and the story that made them necessary: a shop and Stripe both sending
//! Ann's email end in one profile. Sources made from the Stripe and
//! Shopify presets here say `"verify": null`: the presets check signatures
//! (tests/signatures.rs), which these identity stories are not about.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn create_kind(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let response = app
        .api_send(Method::POST, "/api/identity/kinds", body)
        .await;
    let status = response.status();
    (status, response.json().await.expect("json"))
}

async fn patch_kind(app: &TestApp, name: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .api_send(Method::PATCH, &format!("/api/identity/kinds/{name}"), body)
        .await;
    let status = response.status();
    (status, response.json().await.expect("json"))
}

async fn delete_kind(app: &TestApp, name: &str) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/api/identity/kinds/{name}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request")
}

/// The kind names in priority order.
async fn kind_names(app: &TestApp) -> Vec<String> {
    let body = app.api_json("/api/identity/kinds").await;
    body["kinds"]
        .as_array()
        .expect("kinds")
        .iter()
        .map(|k| k["name"].as_str().expect("name").to_string())
        .collect()
}

backend_tests! {
    #[tokio::test]
    async fn a_new_data_dir_lists_the_three_built_in_kinds() {
        let app = spawn_app().await;
        let body = app.api_json("/api/identity/kinds").await;
        assert_eq!(
            kind_names(&app).await,
            ["external_id", "email", "visitor_id"]
        );
        let external = &body["kinds"][0];
        assert_eq!(external["priority"], 1);
        assert_eq!(external["limit"], 1);
        assert_eq!(external["builtin"], true);
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_kinds_api_needs_the_admin_token() {
        let app = spawn_app().await;
        let response = app
            .client
            .get(app.url("/api/identity/kinds"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_team_defines_a_kind_and_it_takes_its_place_in_the_priority_order() {
        let app = spawn_app().await;
        let (status, created) = create_kind(
            &app,
            json!({"name": "stripe_customer_id", "priority": 2, "limit": 1, "normalise": "trim"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["name"], "stripe_customer_id");
        assert_eq!(created["priority"], 2);
        assert_eq!(created["enabled"], true);
        assert_eq!(created["builtin"], false);
        assert_eq!(created["in_use"], false);
        assert!(created["created_at"].is_string());

        // Without a priority: just above visitor_id.
        let (status, phone) = create_kind(&app, json!({"name": "phone", "limit": 2})).await;
        assert_eq!(status, StatusCode::CREATED, "{phone}");
        assert_eq!(phone["normalise"], "trim");
        assert_eq!(
            kind_names(&app).await,
            [
                "external_id",
                "stripe_customer_id",
                "email",
                "phone",
                "visitor_id"
            ]
        );
        let listed = app.api_json("/api/identity/kinds").await;
        let priorities: Vec<i64> = listed["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["priority"].as_i64().unwrap())
            .collect();
        assert_eq!(priorities, [1, 2, 3, 4, 5], "a total order");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_kind_that_breaks_a_rule_is_refused_saying_what_to_fix() {
        let app = spawn_app().await;
        for (body, field) in [
            (json!({"name": "Stripe-Id"}), "name"),
            (json!({"name": "2fa"}), "name"),
            (json!({"name": "phone", "limit": 0}), "limit"),
            (json!({"name": "phone", "limit": 101}), "limit"),
            (json!({"name": "phone", "priority": 1}), "priority"),
            (json!({"name": "phone", "priority": 9}), "priority"),
            (json!({"name": "phone", "normalise": "upper"}), "normalise"),
            (json!({"name": "phone", "normalise": "email"}), "normalise"),
        ] {
            let (status, answer) = create_kind(&app, body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
            assert_eq!(answer["code"], "invalid_kind", "{body}: {answer}");
            assert!(answer["fields"][field].is_string(), "{body}: {answer}");
        }
        let (status, answer) = create_kind(&app, json!({"name": "email"})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_eq!(answer["code"], "builtin_kind");

        create_kind(&app, json!({"name": "phone"})).await;
        let (status, answer) = create_kind(&app, json!({"name": "phone"})).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(answer["code"], "kind_exists");
        assert_eq!(kind_names(&app).await.len(), 4, "nothing half-made");
    }
}

backend_tests! {
    #[tokio::test]
    async fn concurrent_creates_all_land() {
        let app = spawn_app().await;
        let names: Vec<String> = (0..8).map(|i| format!("kind_{i}")).collect();
        let creates = names
            .iter()
            .map(|name| create_kind(&app, json!({ "name": name })));
        for (status, body) in futures::future::join_all(creates).await {
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let listed = kind_names(&app).await;
        for name in &names {
            assert!(listed.contains(name), "{name} lost: {listed:?}");
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_kind_is_changed_moved_and_disabled_but_a_built_in_is_not() {
        let app = spawn_app().await;
        create_kind(&app, json!({"name": "phone"})).await;
        create_kind(&app, json!({"name": "crm_id", "priority": 2})).await;
        let (status, changed) = patch_kind(
            &app,
            "phone",
            json!({"priority": 2, "limit": 3, "normalise": "lowercase", "blocked_values": [" 000 ", "000", ""]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(changed["priority"], 2);
        assert_eq!(changed["limit"], 3);
        assert_eq!(changed["normalise"], "lowercase");
        assert_eq!(changed["blocked_values"], json!(["000"]));
        assert_eq!(
            kind_names(&app).await,
            ["external_id", "phone", "crm_id", "email", "visitor_id"]
        );

        let (status, disabled) = patch_kind(&app, "phone", json!({"enabled": false})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(disabled["enabled"], false);
        assert_eq!(disabled["limit"], 3, "only what is given changes");

        let (status, answer) = patch_kind(&app, "email", json!({"limit": 2})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_eq!(answer["code"], "builtin_kind");
        let (status, answer) = patch_kind(&app, "nope", json!({"limit": 2})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
        assert_eq!(answer["code"], "unknown_kind");
        let (status, answer) = patch_kind(&app, "phone", json!({"limit": 0})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["code"], "invalid_kind");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_kind_in_use_cannot_be_deleted_only_disabled() {
        let app = spawn_app().await;
        create_kind(&app, json!({"name": "phone"})).await;
        create_kind(&app, json!({"name": "unused"})).await;
        let source = app
            .mapped_source(
                "App",
                json!({"event_name": "{{type}}", "identifiers": {"phone": "{{phone}}"}}),
            )
            .await;

        let response = delete_kind(&app, "phone").await;
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["code"], "kind_in_use");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains("`App`"), "{message}");
        assert!(message.contains("\"enabled\": false"), "{message}");

        // Values on a profile keep it in use after the mapping stops naming it.
        app.send_processed(&source.hook, &json!({"type": "call", "phone": "555"}))
            .await;
        app.put_mapping(
            &source,
            json!({"event_name": "{{type}}", "email": "{{email}}"}),
        )
        .await;
        let response = delete_kind(&app, "phone").await;
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let answer: Value = response.json().await.unwrap();
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("profiles hold values"),
            "{answer}"
        );

        assert_eq!(
            delete_kind(&app, "unused").await.status(),
            StatusCode::NO_CONTENT
        );
        assert!(!kind_names(&app).await.contains(&"unused".to_string()));
        assert_eq!(
            delete_kind(&app, "email").await.status(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            delete_kind(&app, "unused").await.status(),
            StatusCode::NOT_FOUND
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_mapping_naming_an_undefined_kind_is_refused_with_where_to_define_it() {
        let app = spawn_app().await;
        let source = app.source_named("App").await;
        let mapping = json!({"event_name": "{{type}}", "identifiers": {"phone": "{{phone}}"}});
        let response = app.try_put_mapping(&source, mapping.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["code"], "unknown_identifier_kind", "{answer}");
        let field = answer["fields"]["identifiers.phone"].as_str().unwrap();
        assert!(field.contains("/api/identity/kinds"), "{field}");

        let response = app
            .api_send(
                Method::POST,
                &format!("/api/sources/{}/mapping/preview", source.id),
                json!({"mapping": mapping, "payload": {"type": "t", "phone": "1"}}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["code"], "unknown_identifier_kind", "{answer}");

        create_kind(&app, json!({"name": "phone"})).await;
        patch_kind(&app, "phone", json!({"enabled": false})).await;
        let saved = app.put_mapping(&source, mapping).await;
        let warnings = saved["warnings"].as_array().unwrap();
        assert!(
            warnings.iter().any(|w| w["slot"] == "identifiers.phone"
                && w["message"].as_str().unwrap().contains("disabled")),
            "{saved}"
        );
    }
}

/// The shop: user id as `external_id`, and the email.
fn shop_mapping() -> Value {
    json!({
        "event_name": "{{type}}",
        "external_id": "{{user_id}}",
        "email": "{{email}}"
    })
}

fn stripe_event(id: &str, customer: &str, email: &str) -> Value {
    json!({
        "id": id,
        "object": "event",
        "type": "invoice.paid",
        "created": 1_709_305_200,
        "livemode": false,
        "data": {"object": {
            "id": format!("in_{id}"),
            "object": "invoice",
            "customer": customer,
            "customer_email": email,
            "amount_paid": 2000,
            "currency": "usd"
        }}
    })
}

backend_tests! {
    #[tokio::test]
    async fn a_shop_and_stripe_sending_anns_email_end_in_one_profile() {
        let app = spawn_app().await;
        let shop = app.mapped_source("Shop", shop_mapping()).await;
        let stripe = app
            .create_source(json!({"preset": "stripe", "verify": null}))
            .await;
        assert!(
            kind_names(&app)
                .await
                .contains(&"stripe_customer_id".to_string()),
            "the preset defines the kind it needs"
        );

        let first = app
            .send_processed(
                &shop.hook,
                &json!({"type": "signup", "user_id": "42", "email": "ann@example.com"}),
            )
            .await;
        assert_eq!(first["status"], "resolved");
        let second = app
            .send_processed(
                &stripe.hook,
                &stripe_event("evt_1", "cus_A42", "Ann@Example.com"),
            )
            .await;
        assert_eq!(second["status"], "resolved", "{second}");
        assert_eq!(second["profile_id"], first["profile_id"], "{second}");
        assert_eq!(
            second["identifiers"],
            json!({"stripe_customer_id": "cus_A42"}),
            "the event shows the id it mapped"
        );
        assert!(
            !second["warnings"].to_string().contains("conflict"),
            "{second}"
        );

        let url = reqwest::Url::parse_with_params(
            &app.url("/api/profiles"),
            &[("kind", "stripe_customer_id"), ("value", "cus_A42")],
        )
        .unwrap();
        let response = app
            .client
            .get(url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let ann: Value = response.json().await.unwrap();
        assert_eq!(ann["id"], first["profile_id"]);
        assert_eq!(ann["external_ids"], json!(["42"]));
        assert_eq!(ann["emails"], json!(["ann@example.com"]));
        assert_eq!(
            ann["identifiers"],
            json!({"stripe_customer_id": ["cus_A42"]})
        );
        assert_eq!(ann["event_count"], 2);
        assert_eq!(app.profile_by("external_id", "42").await["id"], ann["id"]);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_disabled_kinds_values_are_not_used() {
        let app = spawn_app().await;
        let stripe = app
            .create_source(json!({"preset": "stripe", "verify": null}))
            .await;
        patch_kind(&app, "stripe_customer_id", json!({"enabled": false})).await;
        let event = app
            .send_processed(
                &stripe.hook,
                &stripe_event("evt_2", "cus_B7", "bo@example.com"),
            )
            .await;
        assert_eq!(event["status"], "resolved", "{event}");
        let refused = event["identity_refused"].to_string() + &event["warnings"].to_string();
        assert!(refused.contains("kind_disabled"), "{event}");
        let bo = app.profile_by_email("bo@example.com").await;
        assert_eq!(bo["identifiers"], json!({}));
        let url = reqwest::Url::parse_with_params(
            &app.url("/api/profiles"),
            &[("kind", "stripe_customer_id"), ("value", "cus_B7")],
        )
        .unwrap();
        let response = app
            .client
            .get(url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_preset_keeps_a_kind_the_team_already_defined() {
        let app = spawn_app().await;
        create_kind(
            &app,
            json!({"name": "shopify_customer_id", "priority": 2, "limit": 2}),
        )
        .await;
        app.create_source(json!({"preset": "shopify_order", "verify": null}))
            .await;
        let body = app.api_json("/api/identity/kinds").await;
        let kind = body["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == "shopify_customer_id")
            .cloned()
            .unwrap();
        assert_eq!(kind["priority"], 2);
        assert_eq!(kind["limit"], 2);
        assert_eq!(kind["in_use"], true, "the preset's mapping names it");
    }
}

backend_tests! {
    /// The data-loss bug: a form save used to drop `identifiers`.
    #[tokio::test]
    async fn a_mapping_saved_through_the_dashboard_form_keeps_its_identifiers() {
        let app = spawn_app().await;
        create_kind(&app, json!({"name": "phone"})).await;
        let source = app
            .mapped_source(
                "App",
                json!({"event_name": "{{type}}", "identifiers": {"phone": "{{phone}}"}}),
            )
            .await;
        app.login().await;
        let page = format!("/sources/{}", source.id);
        let (_, html) = app.page(&page).await;
        assert!(html.contains("name=\"identifiers\""), "the form shows them");
        assert!(html.contains("phone &#x3D; {{phone}}"), "pre-filled");
        let csrf = csrf_in(&html).unwrap();
        let response = app
            .post_form(
                &format!("/sources/{}/mapping", source.id),
                &[
                    ("csrf", csrf.as_str()),
                    ("event_name", "{{type}}"),
                    ("identifiers", "phone = {{phone}}"),
                    ("traits", "plan = {{plan}}"),
                ],
            )
            .await;
        assert!(
            response.status().is_success() || response.status().is_redirection(),
            "{}",
            response.status()
        );
        let current = app
            .api_json(&format!("/api/sources/{}/mapping", source.id))
            .await;
        assert_eq!(current["version"], 2, "{current}");
        assert_eq!(
            current["mapping"]["identifiers"],
            json!({"phone": "{{phone}}"})
        );
        assert_eq!(current["mapping"]["traits"], json!({"plan": "{{plan}}"}));
    }
}

/// A data dir written by the issue-16 binary (before kinds existed), made
/// by `scripts/make-migration-fixture`, unpacked into a temp dir.
fn unpack_v16_fixture() -> (tempfile::TempDir, Value) {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let archive = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/datadir-v16.tar.gz"
    );
    let status = std::process::Command::new("tar")
        .args(["-xzf", archive, "-C"])
        .arg(dir.path())
        .status()
        .expect("tar runs");
    assert!(status.success(), "tar -xzf {archive}");
    let manifest = std::fs::read_to_string(dir.path().join("fixture.json")).expect("fixture.json");
    (dir, serde_json::from_str(&manifest).expect("manifest"))
}

#[tokio::test]
async fn a_data_dir_written_before_kinds_existed_works_unchanged() {
    let (dir, manifest) = unpack_v16_fixture();
    let app = spawn_with(config_for(&dir.path().join("data"))).await;
    let hook = manifest["hook"].as_str().unwrap();

    // Profiles, as issue 16 left them.
    assert_eq!(
        kind_names(&app).await,
        ["external_id", "email", "visitor_id"]
    );
    let ann = app.profile_by_email("ann@example.com").await;
    assert_eq!(ann["external_ids"], json!(["42"]));
    let mut visitors: Vec<String> = serde_json::from_value(ann["visitor_ids"].clone()).unwrap();
    visitors.sort();
    assert_eq!(visitors, ["v1", "v2"], "the merge by email held");
    assert_eq!(ann["traits"]["plan"], "pro");
    assert_eq!(ann["event_count"], 4);
    assert_eq!(ann["identifiers"], json!({}));
    let id = ann["id"].as_str().unwrap();
    assert_eq!(app.profile_by("visitor_id", "v2").await["id"], ann["id"]);
    assert_eq!(app.profile_by("external_id", "42").await["id"], ann["id"]);
    let other = app.profile_by("external_id", "43").await;
    assert_ne!(other["id"], ann["id"]);
    assert_eq!(other["emails"], json!([]), "the conflict's refusal held");

    // History and events read in their old spelling.
    let history = app.profile_history(id).await;
    assert!(!history.is_empty());
    assert!(
        history
            .iter()
            .any(|line| line.to_string().contains("merge")),
        "{history:?}"
    );
    let conflict = app.profile_history(other["id"].as_str().unwrap()).await;
    assert!(
        conflict
            .iter()
            .any(|l| l.to_string().contains("external_id_conflict")),
        "{conflict:?}"
    );
    assert_eq!(app.profile_events(id).await.len(), 4);

    // New events resolve against the old index.
    let next = app
        .send_processed(
            hook,
            &json!({"type": "purchase", "user": "42", "email": "ann@example.com", "ts": "2026-02-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(next["status"], "resolved", "{next}");
    assert_eq!(next["profile_id"], ann["id"]);

    // And a kind defined now joins the old profile.
    create_kind(&app, json!({"name": "crm_id"})).await;
    let source = TestSource {
        id: manifest["source_id"].as_str().unwrap().to_string(),
        hook: hook.to_string(),
        body: Value::Null,
    };
    app.put_mapping(
        &source,
        json!({"event_name": "{{type}}", "email": "{{email}}", "identifiers": {"crm_id": "{{crm}}"}}),
    )
    .await;
    let crm = app
        .send_processed(
            hook,
            &json!({"type": "sync", "email": "ann@example.com", "crm": "C-1"}),
        )
        .await;
    assert_eq!(crm["profile_id"], ann["id"], "{crm}");
    assert_eq!(
        app.profile(id).await["identifiers"],
        json!({"crm_id": ["C-1"]})
    );
}

backend_tests! {
    #[tokio::test]
    async fn the_kinds_page_defines_changes_disables_and_refuses_to_delete_a_kind_in_use() {
        let app = spawn_app().await;
        app.login().await;
        let (status, html) = app.page("/identity/kinds").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains("href=\"/identity/kinds\""),
            "the nav links it"
        );
        assert!(html.contains("<code>external_id</code>"));
        let csrf = csrf_in(&html).unwrap();

        let response = app
            .post_form(
                "/identity/kinds",
                &[
                    ("csrf", csrf.as_str()),
                    ("name", "stripe_customer_id"),
                    ("priority", "2"),
                    ("limit", "1"),
                    ("normalise", "trim"),
                    ("blocked_values", "cus_test\n"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            kind_names(&app).await,
            ["external_id", "stripe_customer_id", "email", "visitor_id"]
        );

        // A refused form: the page again, saying why, the typed name kept.
        let response = app
            .post_form(
                "/identity/kinds",
                &[
                    ("csrf", csrf.as_str()),
                    ("name", "Bad-Name"),
                    ("limit", "1"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let html = response.text().await.unwrap();
        assert!(html.contains("id=\"kinds-error\""), "{html}");
        assert!(html.contains("lowercase letters"), "{html}");
        assert!(html.contains("value=\"Bad-Name\""));

        let response = app
            .post_form(
                "/identity/kinds/stripe_customer_id",
                &[
                    ("csrf", csrf.as_str()),
                    ("priority", "3"),
                    ("limit", "2"),
                    ("normalise", "lowercase"),
                    ("blocked_values", ""),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let listed = app.api_json("/api/identity/kinds").await;
        assert_eq!(listed["kinds"][2]["name"], "stripe_customer_id");
        assert_eq!(listed["kinds"][2]["limit"], 2);
        assert_eq!(listed["kinds"][2]["normalise"], "lowercase");
        assert_eq!(listed["kinds"][2]["blocked_values"], json!([]));

        app.mapped_source(
            "Payments",
            json!({"event_name": "{{type}}", "identifiers": {"stripe_customer_id": "{{c}}"}}),
        )
        .await;
        let response = app
            .post_form(
                "/identity/kinds/stripe_customer_id/delete",
                &[("csrf", csrf.as_str())],
            )
            .await;
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let html = response.text().await.unwrap();
        assert!(html.contains("is in use"), "{html}");
        assert!(html.contains("disable it instead"), "{html}");

        let response = app
            .post_form(
                "/identity/kinds/stripe_customer_id/enabled",
                &[("csrf", csrf.as_str()), ("enabled", "false")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let (_, html) = app.page("/identity/kinds").await;
        assert!(html.contains("<strong>disabled</strong>"), "{html}");
        assert!(html.contains(">Enable</button>"));

        let response = app
            .post_form("/identity/kinds", &[("csrf", "wrong"), ("name", "other")])
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_profile_pages_show_the_teams_kinds_and_search_by_them() {
        let app = spawn_app().await;
        let stripe = app
            .create_source(json!({"preset": "stripe", "verify": null}))
            .await;
        let event = app
            .send_processed(
                &stripe.hook,
                &stripe_event("evt_9", "cus_A42", "ann@example.com"),
            )
            .await;
        let id = event["profile_id"].as_str().unwrap();
        app.login().await;
        let (_, html) = app.page(&format!("/profiles/{id}")).await;
        assert!(
            html.contains("<dt class=\"own-kind\">stripe_customer_id</dt>"),
            "{html}"
        );
        assert!(html.contains("cus_A42"));

        let (_, list) = app.page("/profiles").await;
        assert!(
            list.contains("<option value=\"stripe_customer_id\""),
            "the search box offers it"
        );
        assert!(list.contains("stripe_customer_id: cus_A42"), "{list}");
        let (_, event_page) = app
            .page(&format!("/events/{}", event["id"].as_str().unwrap()))
            .await;
        assert!(
            event_page.contains("<dt class=\"own-kind\">stripe_customer_id</dt><dd>cus_A42</dd>"),
            "{event_page}"
        );

        let response = app
            .client
            .get(app.url("/profiles?kind=stripe_customer_id&q=cus_A42"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(location, format!("/profiles/{id}"));
    }
}

/// A preset's `identifiers` name only kinds it declares, so creating a
/// source from it never stops at `unknown_identifier_kind`.
#[test]
fn every_presets_identifiers_are_kinds_it_declares() {
    use inlet::domain::mapping::presets::presets;
    for preset in presets() {
        let declared: Vec<&str> = preset.kinds.iter().map(|k| k.name.as_str()).collect();
        for kind in preset.mapping.identifiers.iter().flat_map(|m| m.keys()) {
            assert!(declared.contains(&kind.as_str()), "{}: {kind}", preset.name);
        }
    }
    let stripe = inlet::domain::mapping::presets::preset("stripe").unwrap();
    assert!(
        stripe.mapping.external_id.is_none(),
        "Stripe no longer fights over external_id"
    );
    assert_eq!(stripe.kinds[0].name.as_str(), "stripe_customer_id");
    assert_eq!(stripe.kinds[0].limit, 1);
}
