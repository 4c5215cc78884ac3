//! The dashboard over HTTP, as a browser without JavaScript sees it: login,
//! sessions and CSRF, escaping of untrusted payloads, and each page's content.

mod common;

use common::*;
use reqwest::{header, StatusCode};
use serde_json::json;

backend_tests! {
    #[tokio::test]
    async fn pages_redirect_to_login_without_a_session() {
        let app = spawn_app().await;
        for path in [
            "/",
            "/events",
            "/errors",
            "/sources",
            "/profiles",
            "/events/stream",
        ] {
            let response = app.client.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
            // The page asked for rides along, so the login can return to it.
            let expected = match path {
                "/" => "/login".to_string(),
                _ => format!("/login?next=%2F{}", &path[1..].replace('/', "%2F")),
            };
            assert_eq!(
                response.headers()[header::LOCATION],
                expected.as_str(),
                "{path}"
            );
        }
        let (status, html) = app.page("/login").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("name=\"token\""));
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_wrong_token_shows_the_form_again_with_an_error() {
        let app = spawn_app().await;
        let response = app.post_form("/login", &[("token", "nope")]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        let html = response.text().await.unwrap();
        assert!(html.contains("name=\"token\""));
        assert!(html.contains("not the admin token"));
        assert_eq!(app.page("/").await.0, StatusCode::SEE_OTHER);
    }
}

backend_tests! {
    #[tokio::test]
    async fn login_sets_a_strict_http_only_cookie_and_logout_ends_the_session() {
        let app = spawn_app().await;
        let response = app.login().await;
        assert_eq!(response.headers()[header::LOCATION], "/");
        let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.starts_with("inlet_session="));
        assert!(cookie.contains("HttpOnly"));
        assert!(cookie.contains("SameSite=Strict"));
        assert!(cookie.contains("Path=/"));
        let (status, html) = app.page("/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("Events over time"), "the home page");
        assert!(html.contains("Log out"));

        // The old cookie stops working server-side, not just in this browser.
        let old_cookie = cookie.split(';').next().unwrap().to_string();
        let csrf = app.csrf("/").await;
        let response = app.post_form("/logout", &[("csrf", &csrf)]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.page("/").await.0, StatusCode::SEE_OTHER);
        let replay = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(app.url("/"))
            .header(header::COOKIE, old_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(replay.status(), StatusCode::SEE_OTHER);
    }
}

backend_tests! {
    #[tokio::test]
    async fn forms_without_the_csrf_token_are_refused() {
        let app = spawn_app().await;
        app.login().await;
        let response = app.post_form("/sources", &[("name", "Forged")]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let response = app
            .post_form("/sources", &[("name", "Forged"), ("csrf", "wrong")])
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.text().await.unwrap().contains("security token"));
        let list = app.api_json("/api/sources").await;
        assert_eq!(
            list["sources"].as_array().unwrap().len(),
            0,
            "nothing created"
        );
        // Logout is a state change too.
        let response = app.post_form("/logout", &[("csrf", "wrong")]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.page("/").await.0, StatusCode::OK, "still logged in");
    }
}

backend_tests! {
    #[tokio::test]
    async fn payload_markup_is_escaped_on_the_list_and_the_event_page() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        let evil = "<script>alert(1)</script>";
        let ids = app
            .send_ok(
                &source.hook,
                &json!({"note": evil, "long": "y".repeat(300)}),
            )
            .await;
        app.processed_event(&ids[0]).await;
        app.login().await;
        let (_, list) = app.page("/events").await;
        assert!(list.contains(&ids[0]), "the event is listed");
        assert!(list.contains("Shop"));
        assert!(!list.contains(evil));
        let (status, html) = app.page(&format!("/events/{}", ids[0])).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!html.contains(evil), "the raw tag never appears");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(
            html.contains(&"y".repeat(300)),
            "the payload is shown whole"
        );
        assert!(html.contains("unmapped"));
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_source_name_is_escaped_everywhere_it_appears() {
        let app = spawn_app().await;
        let source = app.source_named("<b>bold</b>").await;
        let ids = app.send_ok(&source.hook, &json!({"a": 1})).await;
        app.processed_event(&ids[0]).await;
        app.login().await;
        for path in ["/", "/sources", &format!("/sources/{}", source.id)] {
            let (_, html) = app.page(path).await;
            assert!(!html.contains("<b>bold</b>"), "{path}");
            assert!(html.contains("&lt;b&gt;bold&lt;/b&gt;"), "{path}");
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn events_can_be_filtered_and_searched() {
        let app = spawn_app().await;
        let a = app.source_named("Alpha").await;
        let b = app.source_named("Beta").await;
        let first = app.send_ok(&a.hook, &json!({"x": 1})).await;
        let second = app.send_ok(&b.hook, &json!({"x": 2})).await;
        app.processed_event(&second[0]).await;
        app.login().await;
        let (_, html) = app.page(&format!("/events?source_id={}", a.id)).await;
        assert!(html.contains(&first[0]));
        assert!(!html.contains(&second[0]));
        let (_, html) = app.page(&format!("/events?q={}", second[0])).await;
        assert!(html.contains(&second[0]));
        assert!(!html.contains(&first[0]));
        let (_, html) = app.page("/events?status=failed").await;
        assert!(!html.contains(&first[0]));
        // Nonsense filters are ignored, not a crash.
        let (status, _) = app.page("/events?source_id=zzz&status=<x>&before=1").await;
        assert_eq!(status, StatusCode::OK);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_bad_request_shows_on_the_error_page() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        let response = app
            .send_raw(&source.hook, "application/json", "{not json <i>")
            .await;
        assert!(response.status().is_client_error());
        app.login().await;
        let (status, html) = app.page("/errors").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("decode"), "stage shown");
        assert!(html.contains("Shop"), "source shown");
        assert!(!html.contains("<i>"), "excerpt escaped");
        let (_, html) = app.page("/errors?stage=map").await;
        assert!(html.contains("No errors match"));
    }
}

backend_tests! {
    #[tokio::test]
    async fn creating_a_source_shows_its_webhook_url_once() {
        let app = spawn_app().await;
        app.login().await;
        let csrf = app.csrf("/sources").await;
        let response = app
            .post_form(
                "/sources",
                &[
                    ("csrf", &csrf),
                    ("name", "Newsletter"),
                    ("records_path", ""),
                ],
            )
            .await;
        // Post/redirect/get: the URL waits in the session for the source's page.
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        let (_, html) = app.page(location).await;
        let url = webhook_url_in(&html).expect("the webhook URL is shown");
        assert!(url.starts_with(&format!("{}/hooks/", app.base)), "{url}");
        assert!(html.contains("shown only once"));
        assert!(html.contains("id=\"mapping\""), "mapping placeholder");

        // The URL works, and no later page shows it again.
        let hook = url.trim_start_matches(&app.base).to_string();
        app.send_ok(&hook, &json!({"hello": "world"})).await;
        let list = app.api_json("/api/sources").await;
        let id = list["sources"][0]["id"].as_str().unwrap().to_string();
        let (_, page) = app.page(&format!("/sources/{id}")).await;
        assert!(page.contains("Newsletter"));
        assert!(!page.contains(&url));
        assert!(webhook_url_in(&page).is_none());
        let (_, listing) = app.page("/sources").await;
        assert!(listing.contains("Newsletter"));
        assert!(!listing.contains(&url));
    }
}

backend_tests! {
    #[tokio::test]
    async fn bad_source_settings_re_show_the_form_with_the_reason() {
        let app = spawn_app().await;
        app.login().await;
        let csrf = app.csrf("/sources").await;
        let response = app
            .post_form(
                "/sources",
                &[
                    ("csrf", &csrf),
                    ("name", "Shop"),
                    ("api_key_header", "x-key"),
                    ("api_key_value", "short"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let html = response.text().await.unwrap();
        assert!(html.contains("at least 8 characters"));
        assert!(html.contains("value=\"Shop\""), "what was typed is kept");
        assert!(!html.contains("short\""), "the secret is not echoed");
    }
}

backend_tests! {
    #[tokio::test]
    async fn rotate_shows_a_new_url_and_delete_removes_the_source() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        app.login().await;
        let path = format!("/sources/{}", source.id);
        let csrf = app.csrf(&path).await;
        let response = app
            .post_form(&format!("{path}/rotate"), &[("csrf", &csrf)])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        let url = webhook_url_in(&app.page(location).await.1).expect("new URL");
        assert!(!url.ends_with(&source.hook));
        assert_eq!(app.send(&source.hook, &json!({})).await.status(), 404);

        let response = app
            .post_form(
                &format!("{path}/api-key"),
                &[
                    ("csrf", &csrf),
                    ("header", "x-shop-key"),
                    ("value", "k-123456789"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let (_, html) = app.page(&path).await;
        assert!(html.contains("x-shop-key"));
        assert!(!html.contains("k-123456789"));

        let response = app
            .post_form(&format!("{path}/delete"), &[("csrf", &csrf)])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.page(&path).await.0, StatusCode::NOT_FOUND);
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_live_tail_is_an_event_stream_behind_the_login() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        app.login().await;
        let mut response = open_tail(&app).await;
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let ids = app.send_ok(&source.hook, &json!({"live": true})).await;
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !seen.contains(&ids[0]) {
            let chunk = tokio::time::timeout_at(deadline, response.chunk())
                .await
                .expect("the event arrives within 10s")
                .unwrap()
                .expect("stream open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(seen.contains("event: event"));
        assert!(seen.contains("\"row\""));
    }
}

backend_tests! {
    #[tokio::test]
    async fn static_assets_have_their_content_types() {
        let app = spawn_app().await;
        let response = app
            .client
            .get(app.url("/static/app.css"))
            .send()
            .await
            .unwrap();
        assert!(response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css"));
    }
}

const EVIL: &str = "<script>alert(1)</script>";

/// A source with two unmapped order events; returns it and the event ids.
async fn shop_with_orders(app: &TestApp) -> (TestSource, Vec<String>) {
    let source = app.source_named("Shop").await;
    let mut ids = Vec::new();
    for (n, email) in ["ada@example.com", "grace@example.com"].iter().enumerate() {
        let body = json!({
            "type": "order.created",
            "id": format!("evt-{n}"),
            "customer": {"email": email, "id": format!("c-{n}")},
            "note": EVIL,
        });
        ids.extend(app.send_ok(&source.hook, &body).await);
    }
    for id in &ids {
        assert_eq!(app.processed_event(id).await["status"], "unmapped");
    }
    (source, ids)
}

/// The editor's fields for a simple, valid mapping.
fn mapping_fields<'a>(csrf: &'a str, email: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("event_name", "Order placed"),
        ("email", email),
        ("external_id", "{{customer.id}}"),
        ("event_id", "{{id}}"),
        ("properties", "*"),
        ("traits", "note = {{note}}"),
    ]
}

/// Polls the API until the event's status is `status`.
async fn wait_for_status(app: &TestApp, id: &str, status: &str) -> serde_json::Value {
    for _ in 0..200 {
        let event = app.event(id).await;
        if event["status"] == status {
            return event;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("event {id} did not become {status} within 5s");
}

backend_tests! {
    #[tokio::test]
    async fn the_mapping_section_shows_the_schema_and_prefills_the_suggestion() {
        let app = spawn_app().await;
        let (source, _) = shop_with_orders(&app).await;
        app.login().await;
        let (status, html) = app.page(&format!("/sources/{}", source.id)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("id=\"schema\""), "the field table");
        assert!(html.contains("<code>customer.email</code>"));
        assert!(html.contains("100.0%"), "% present");
        assert!(html.contains("email"), "format column");
        // The suggestion fills the editor, with its reasons.
        assert!(html.contains("Showing the suggestion mapping"));
        assert!(html.contains("name=\"email\" class=\"mono\" value=\"{{customer.email}}\""));
        assert!(html.contains("suggested: "));
        // An example value from the payload is escaped.
        assert!(!html.contains(EVIL));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        // Without events there is nothing to learn yet.
        let empty = app.source_named("Empty").await;
        let (_, html) = app.page(&format!("/sources/{}", empty.id)).await;
        assert!(html.contains("id=\"schema-empty\""));
    }
}

backend_tests! {
    #[tokio::test]
    async fn preview_shows_mapped_results_and_resolutions_and_stores_nothing() {
        let app = spawn_app().await;
        let (source, ids) = shop_with_orders(&app).await;
        app.login().await;
        let path = format!("/sources/{}", source.id);
        let csrf = app.csrf(&path).await;
        let response = app
            .post_form(
                &format!("{path}/mapping/preview"),
                &mapping_fields(&csrf, "{{customer.email}}"),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let html = response.text().await.unwrap();
        assert!(html.contains("id=\"preview\""));
        assert!(html.contains("class=\"mapped-name\">Order placed<"));
        assert!(html.contains("grace@example.com"));
        assert!(html.contains(">create</span>"), "resolver decision");
        assert!(
            html.contains(&ids[0]) && html.contains(&ids[1]),
            "each sample"
        );
        assert!(!html.contains(EVIL), "mapped values are escaped");
        // What was typed stays in the form.
        assert!(html.contains("value=\"Order placed\""));
        // Nothing was stored.
        let api = app.api_json(&format!("/api/sources/{}", source.id)).await;
        assert!(api["mapping_version"].is_null());
        assert_eq!(app.event(&ids[0]).await["status"], "unmapped");
        let missing = app.api_get("/api/profiles?email=ada%40example.com").await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_bad_template_is_shown_next_to_its_field() {
        let app = spawn_app().await;
        let (source, _) = shop_with_orders(&app).await;
        app.login().await;
        let path = format!("/sources/{}", source.id);
        let csrf = app.csrf(&path).await;
        for action in ["mapping", "mapping/preview"] {
            let response = app
                .post_form(
                    &format!("{path}/{action}"),
                    &mapping_fields(&csrf, "{{customer.email"),
                )
                .await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{action}");
            let html = response.text().await.unwrap();
            assert!(html.contains("data-field=\"email\""), "{action}");
            assert!(html.contains("aria-invalid"), "{action}");
            assert!(
                html.contains("value=\"{{customer.email\""),
                "typed value kept"
            );
        }
        // A traits line without `=` is refused before compiling.
        let mut fields = mapping_fields(&csrf, "{{customer.email}}");
        fields.retain(|(k, _)| *k != "traits");
        fields.push(("traits", "note {{note}}"));
        let response = app.post_form(&format!("{path}/mapping"), &fields).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("data-field=\"traits\""));
        let api = app.api_json(&format!("/api/sources/{}", source.id)).await;
        assert!(api["mapping_version"].is_null(), "nothing saved");
    }
}

backend_tests! {
    #[tokio::test]
    async fn save_creates_version_1_and_maps_the_earlier_events() {
        let app = spawn_app().await;
        let (source, ids) = shop_with_orders(&app).await;
        app.login().await;
        let path = format!("/sources/{}", source.id);
        let csrf = app.csrf(&path).await;
        let response = app
            .post_form(
                &format!("{path}/mapping"),
                &mapping_fields(&csrf, "{{customer.email}}"),
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        assert!(location.contains("saved=1"), "{location}");
        for id in &ids {
            let event = wait_for_status(&app, id, "resolved").await;
            assert_eq!(event["mapping_version"], 1);
        }
        let (_, html) = app.page(location).await;
        assert!(html.contains("Saved version 1"));
        assert!(html.contains("Current version: <strong>v1</strong>"));
        assert!(html.contains("id=\"versions\""));
        assert!(
            html.contains("current (version 1)"),
            "editor shows the saved one"
        );
        assert!(html.contains("Order placed"));
        // The suggestion is one click away, without JS.
        let (_, html) = app.page(&format!("{path}?suggest=1")).await;
        assert!(html.contains("Showing the suggestion mapping"));
        // Unseen paths are warned about on save.
        let mut fields = mapping_fields(&csrf, "{{customer.mail}}");
        fields.retain(|(k, _)| *k != "traits");
        let response = app.post_form(&format!("{path}/mapping"), &fields).await;
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        let (_, html) = app.page(location).await;
        assert!(html.contains("Saved version 2"));
        assert!(html.contains("customer.mail") && html.contains("has never been seen"));
        // Replay progress as JSON for the page's poll.
        let response = app
            .post_form(
                &format!("{path}/replay"),
                &[("csrf", &csrf), ("status", "failed")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let progress: serde_json::Value = app
            .client
            .get(app.url(&format!("{path}/replay.json")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(progress["replay"]["status"], "failed");
    }
}

backend_tests! {
    #[tokio::test]
    async fn replay_needs_a_mapping_and_replay_json_a_session() {
        let app = spawn_app().await;
        let (source, _) = shop_with_orders(&app).await;
        let path = format!("/sources/{}", source.id);
        let response = app
            .client
            .get(app.url(&format!("{path}/replay.json")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        app.login().await;
        let csrf = app.csrf(&path).await;
        let response = app
            .post_form(
                &format!("{path}/replay"),
                &[("csrf", &csrf), ("status", "unmapped")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert!(response.text().await.unwrap().contains("save a mapping"));
    }
}

backend_tests! {
    #[tokio::test]
    async fn mapping_forms_without_the_csrf_token_are_refused() {
        let app = spawn_app().await;
        let (source, _) = shop_with_orders(&app).await;
        app.login().await;
        let path = format!("/sources/{}", source.id);
        for action in ["mapping", "mapping/preview", "replay"] {
            let mut fields = mapping_fields("wrong", "{{customer.email}}");
            fields.push(("status", "unmapped"));
            let response = app.post_form(&format!("{path}/{action}"), &fields).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{action}");
        }
        let api = app.api_json(&format!("/api/sources/{}", source.id)).await;
        assert!(api["mapping_version"].is_null(), "nothing saved");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_source_can_start_from_a_preset() {
        let app = spawn_app().await;
        app.login().await;
        let (_, html) = app.page("/sources").await;
        assert!(html.contains("<option value=\"shopify_order\""));
        let csrf = app.csrf("/sources").await;
        let response = app
            .post_form(
                "/sources",
                &[
                    ("csrf", &csrf),
                    ("name", "Orders"),
                    ("preset", "shopify_order"),
                ],
            )
            .await;
        let (_, html) = app.page(&see_other(&response)).await;
        assert!(html.contains("Current version: <strong>v1</strong>"));
        assert!(
            html.contains("<td>shopify_order</td>"),
            "the preset in versions"
        );
        let response = app
            .post_form(
                "/sources",
                &[("csrf", &csrf), ("name", "X"), ("preset", "nope")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.text().await.unwrap().contains("unknown preset"));
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_profile_page_shows_identities_events_and_history() {
        let app = spawn_app().await;
        let (source, ids) = shop_with_orders(&app).await;
        app.login().await;
        let path = format!("/sources/{}", source.id);
        let csrf = app.csrf(&path).await;
        app.post_form(
            &format!("{path}/mapping"),
            &mapping_fields(&csrf, "{{customer.email}}"),
        )
        .await;
        let event = wait_for_status(&app, &ids[0], "resolved").await;
        let profile = event["profile_id"].as_str().unwrap().to_string();

        let (status, html) = app.page(&format!("/profiles/{profile}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("ada@example.com"));
        assert!(html.contains("c-0"), "external id");
        assert!(html.contains(&ids[0]), "its event");
        assert!(!html.contains(&ids[1]), "not grace's event");
        assert!(html.contains("id=\"history\""));
        assert!(html.contains(">create</span>"));
        assert!(html.contains("Created from"));
        assert!(html.contains("<code>note</code>"), "the trait");
        assert!(!html.contains(EVIL), "trait values are escaped");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));

        // Search redirects to the profile, by any identifier kind.
        for query in [
            "q=ADA%40example.com",
            "q=ada%40example.com&kind=email",
            "q=c-0&kind=external_id",
            "q=c-0",
        ] {
            let response = app
                .client
                .get(app.url(&format!("/profiles?{query}")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{query}");
            assert_eq!(
                response.headers()[header::LOCATION],
                format!("/profiles/{profile}").as_str()
            );
        }
        let (status, html) = app.page("/profiles?q=nobody%40example.com").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("id=\"no-profile\""));
        let (status, _) = app.page("/profiles/not-a-profile").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

backend_tests! {
    #[tokio::test]
    async fn an_absorbed_profile_shows_its_survivor() {
        let app = spawn_app().await;
        let (source, ids) = shop_with_orders(&app).await;
        app.login().await;
        let path = format!("/sources/{}", source.id);
        let csrf = app.csrf(&path).await;
        app.post_form(
            &format!("{path}/mapping"),
            &mapping_fields(&csrf, "{{customer.email}}"),
        )
        .await;
        let a = wait_for_status(&app, &ids[0], "resolved").await["profile_id"]
            .as_str()
            .unwrap()
            .to_string();
        let b = wait_for_status(&app, &ids[1], "resolved").await["profile_id"]
            .as_str()
            .unwrap()
            .to_string();
        let response = app
            .api_send(
                reqwest::Method::POST,
                &format!("/api/profiles/{a}/merge"),
                json!({"into": b}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let (status, html) = app.page(&format!("/profiles/{a}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("id=\"merged-note\""));
        assert!(html.contains(&b), "the survivor is shown");
        assert!(html.contains("ada@example.com") && html.contains("grace@example.com"));
        assert!(html.contains("by hand"));
    }
}

backend_tests! {
    /// The dashboard creates through the same use case as the API: a preset
    /// without a typed name names the source, and its mapping is version 1.
    #[tokio::test]
    async fn a_source_created_from_a_preset_without_a_name_takes_the_presets_name() {
        let app = spawn_app().await;
        app.login().await;
        let csrf = app.csrf("/sources").await;
        let response = app
            .post_form(
                "/sources",
                &[("csrf", &csrf), ("name", ""), ("preset", "stripe")],
            )
            .await;
        let (_, html) = app.page(&see_other(&response)).await;
        assert!(webhook_url_in(&html).is_some(), "the webhook URL is shown");
        let list = app.api_json("/api/sources").await;
        let source = &list["sources"][0];
        assert_eq!(source["name"], "stripe", "{source}");
        assert_eq!(source["mapping_version"], 1, "{source}");
    }
}

backend_tests! {
    /// A logged-out session's live tail stops: the stream says `end` and
    /// closes, instead of going on showing new events (issue 16).
    #[tokio::test]
    async fn the_live_tail_ends_when_its_session_is_logged_out() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        app.login().await;
        let mut response = open_tail(&app).await;
        let csrf = app.csrf("/").await;
        let logout = app.post_form("/logout", &[("csrf", &csrf)]).await;
        assert_eq!(logout.status(), StatusCode::SEE_OTHER);
        app.send_ok(&source.hook, &json!({"email": "after-logout@example.org"}))
            .await;
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let chunk = tokio::time::timeout_at(deadline, response.chunk())
                .await
                .expect("the stream ends within 10 s of the logout")
                .unwrap();
            match chunk {
                Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                None => break,
            }
        }
        assert!(seen.contains("event: end"), "{seen}");
        assert!(!seen.contains("after-logout@example.org"), "{seen}");
    }
}

/// Opens the live tail as the logged-in browser does.
async fn open_tail(app: &TestApp) -> reqwest::Response {
    let response = app
        .client
        .get(app.url("/events/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response
}

// --- Pages that are safe (issue 16): post/redirect/get, deep links, 404s ---

/// The `Location` of a 303, asserting the status.
fn see_other(response: &reqwest::Response) -> String {
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "{}",
        response.url()
    );
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string()
}

async fn sources_count(app: &TestApp) -> usize {
    app.api_json("/api/sources").await["sources"]
        .as_array()
        .unwrap()
        .len()
}

backend_tests! {
    #[tokio::test]
    async fn every_dashboard_form_post_answers_a_303() {
        let app = spawn_app().await;
        let (shop, _) = shop_with_orders(&app).await;
        see_other(&app.login().await);
        let csrf = app.csrf("/sources").await;
        let created = app
            .post_form("/sources", &[("csrf", &csrf), ("name", "Newsletter")])
            .await;
        see_other(&created);
        let path = format!("/sources/{}", shop.id);
        let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
            (format!("{path}/rotate"), vec![("csrf", &csrf)]),
            (
                format!("{path}/api-key"),
                vec![("csrf", &csrf), ("header", "x-k"), ("value", "k-123456789")],
            ),
            (format!("{path}/test-event"), vec![("csrf", &csrf)]),
            (
                format!("{path}/mapping"),
                mapping_fields(&csrf, "{{customer.email}}"),
            ),
            (
                format!("{path}/replay"),
                vec![("csrf", &csrf), ("status", "failed")],
            ),
            (format!("{path}/delete"), vec![("csrf", &csrf)]),
            ("/logout".to_string(), vec![("csrf", &csrf)]),
        ];
        for (action, fields) in posts {
            see_other(&app.post_form(&action, &fields).await);
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_reload_after_create_shows_the_url_no_more_and_creates_nothing() {
        let app = spawn_app().await;
        app.login().await;
        let csrf = app.csrf("/sources").await;
        let response = app
            .post_form("/sources", &[("csrf", &csrf), ("name", "Newsletter")])
            .await;
        let landing = see_other(&response);
        let (_, first) = app.page(&landing).await;
        let url = webhook_url_in(&first).expect("shown on the page the redirect lands on");
        assert!(!landing.contains("hooks"), "never in the URL: {landing}");
        // The reload: a GET of the landing page, not the POST again.
        let (status, reloaded) = app.page(&landing).await;
        assert_eq!(status, StatusCode::OK);
        assert!(webhook_url_in(&reloaded).is_none(), "shown once");
        assert!(!reloaded.contains(&url));
        assert!(reloaded.contains("cannot be shown again"), "says why");
        assert_eq!(sources_count(&app).await, 1, "one source");
        let hook = url.trim_start_matches(&app.base).to_string();
        app.send_ok(&hook, &json!({"hello": "world"})).await;
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_reload_after_rotate_keeps_the_url_it_showed_working() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        app.login().await;
        let path = format!("/sources/{}", source.id);
        let csrf = app.csrf(&path).await;
        let response = app
            .post_form(&format!("{path}/rotate"), &[("csrf", &csrf)])
            .await;
        let landing = see_other(&response);
        let url = webhook_url_in(&app.page(&landing).await.1).expect("the new URL");
        let (_, reloaded) = app.page(&landing).await;
        assert!(webhook_url_in(&reloaded).is_none(), "shown once");
        let hook = url.trim_start_matches(&app.base).to_string();
        app.send_ok(&hook, &json!({"after": "reload"})).await;
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_flash_lives_in_the_session_not_in_a_cookie() {
        let app = spawn_app().await;
        app.login().await;
        let csrf = app.csrf("/sources").await;
        let response = app
            .post_form("/sources", &[("csrf", &csrf), ("name", "Newsletter")])
            .await;
        assert!(
            response.headers().get(header::SET_COOKIE).is_none(),
            "no cookie carries the URL"
        );
        // Another browser's session does not see it.
        let other = spawn_client();
        login_with(&app, &other).await;
        let landing = see_other(&response);
        let html = other
            .get(app.url(&landing))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(webhook_url_in(&html).is_none());
        assert!(webhook_url_in(&app.page(&landing).await.1).is_some());
    }
}

fn spawn_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

async fn login_with(app: &TestApp, client: &reqwest::Client) -> reqwest::Response {
    client
        .post(app.url("/login"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap()
}

backend_tests! {
    #[tokio::test]
    async fn login_returns_to_the_deep_link_asked_for() {
        let app = spawn_app().await;
        let response = app
            .client
            .get(app.url("/profiles/abc"))
            .send()
            .await
            .unwrap();
        let login = see_other(&response);
        assert_eq!(login, "/login?next=%2Fprofiles%2Fabc");
        let (_, form) = app.page(&login).await;
        assert!(
            form.contains(r#"name="next" value="/profiles/abc""#),
            "{form}"
        );
        let response = app
            .post_form(
                "/login",
                &[("token", ADMIN_TOKEN), ("next", "/profiles/abc")],
            )
            .await;
        assert_eq!(see_other(&response), "/profiles/abc");
    }
}

backend_tests! {
    #[tokio::test]
    async fn login_never_redirects_to_another_site() {
        let app = spawn_app().await;
        for next in [
            "//evil.com",
            "https://evil.com",
            "/\\evil.com",
            "/\t/evil.com",
            "http:/evil.com",
        ] {
            let client = spawn_client();
            let response = client
                .post(app.url("/login"))
                .form(&[("token", ADMIN_TOKEN), ("next", next)])
                .send()
                .await
                .unwrap();
            assert_eq!(see_other(&response), "/", "{next:?}");
            let (_, form) = app
                .page(&format!("/login?next={}", next.replace('/', "%2F")))
                .await;
            assert!(!form.contains("name=\"next\""), "{next:?} is not echoed");
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_404_page_keeps_the_navigation_for_a_session() {
        let app = spawn_app().await;
        let get_html = |path: &str| {
            app.client
                .get(app.url(path))
                .header(header::ACCEPT, "text/html,application/xhtml+xml")
                .send()
        };
        // Logged out: a plain page with a way to the login.
        let response = get_html("/no/such/page").await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let html = response.text().await.unwrap();
        assert!(html.contains("href=\"/login\""));
        assert!(!html.contains("Log out"));

        app.login().await;
        for path in [
            "/no/such/page",
            "/sources/00000000-0000-0000-0000-000000000000",
        ] {
            let response = get_html(path).await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            let html = response.text().await.unwrap();
            assert!(html.contains("<nav"), "{path}: {html}");
            assert!(html.contains("href=\"/sources\""), "{path}");
            assert!(html.contains("Log out"), "{path}");
        }
        // Programs still get the JSON error.
        let response = app.api_get("/api/nothing").await;
        assert_eq!(
            error_of(response, StatusCode::NOT_FOUND).await,
            "no such endpoint; see docs/api.md"
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_favicon_is_served_and_linked() {
        let app = spawn_app().await;
        for path in ["/favicon.ico", "/static/favicon.svg"] {
            let response = app.client.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "image/svg+xml");
            assert!(response.text().await.unwrap().starts_with("<svg"));
        }
        let (_, html) = app.page("/login").await;
        assert!(html.contains(r#"<link rel="icon" href="/static/favicon.svg""#));
    }
}

backend_tests! {
    #[tokio::test]
    async fn logout_clears_the_site_cache_and_the_session_check_says_so() {
        let app = spawn_app().await;
        let alive = || app.client.get(app.url("/session")).send();
        assert_eq!(alive().await.unwrap().status(), StatusCode::UNAUTHORIZED);
        app.login().await;
        let response = alive().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let csrf = app.csrf("/sources").await;
        let response = app.post_form("/logout", &[("csrf", &csrf)]).await;
        see_other(&response);
        assert_eq!(response.headers()["clear-site-data"], "\"cache\"");
        assert_eq!(alive().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_test_event_goes_through_the_hook_path_marked_as_a_test() {
        let app = spawn_app().await;
        let source = app
            .create_source(
                json!({"name": "Shop", "api_key": {"header": "x-shop-key", "value": "k-123456789"}}),
            )
            .await;
        // Nothing received yet: the default sample, without the sender's key.
        let response = app
            .api_send(
                reqwest::Method::POST,
                &format!("/api/sources/{}/test-event", source.id),
                json!({}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let sent: serde_json::Value = response.json().await.unwrap();
        assert_eq!(sent["sent"], "default");
        let event = app.processed_event(sent["id"].as_str().unwrap()).await;
        assert_eq!(event["headers"]["x-inlet-test-event"], "true", "{event}");
        assert_eq!(event["payload"]["email"], "test@example.com");

        // After a real record, that record is what the next test sends.
        let real = json!({"type": "order.created", "customer": {"email": "ada@example.com"}});
        let hook_response = app
            .client
            .post(app.url(&source.hook))
            .header("x-shop-key", "k-123456789")
            .json(&real)
            .send()
            .await
            .unwrap();
        assert_eq!(hook_response.status(), StatusCode::ACCEPTED);
        app.login().await;
        let path = format!("/sources/{}", source.id);
        let (_, page) = app.page(&path).await;
        assert!(page.contains("Send a test event"));
        let csrf = csrf_in(&page).unwrap();
        let response = app
            .post_form(&format!("{path}/test-event"), &[("csrf", &csrf)])
            .await;
        let landing = see_other(&response);
        assert!(landing.starts_with("/events/"), "{landing}");
        let id = landing.trim_start_matches("/events/");
        let event = app.processed_event(id).await;
        assert_eq!(event["payload"], real);
        let (status, html) = app.page(&landing).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains("x-inlet-test-event"),
            "the page shows the marker"
        );
        assert!(
            html.contains("id=\"test-event\""),
            "and says so beside the status"
        );
        assert!(html.contains("ada@example.com"));
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_test_event_for_an_unknown_source_is_a_404() {
        let app = spawn_app().await;
        let response = app
            .api_send(
                reqwest::Method::POST,
                "/api/sources/00000000-0000-0000-0000-000000000000/test-event",
                json!({}),
            )
            .await;
        error_of(response, StatusCode::NOT_FOUND).await;
    }
}
