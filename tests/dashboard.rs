//! The dashboard over HTTP, as a browser without JavaScript sees it: login,
//! sessions and CSRF, escaping of untrusted payloads, and each page's content.

mod common;

use common::*;
use reqwest::{header, StatusCode};
use serde_json::json;

#[tokio::test]
async fn pages_redirect_to_login_without_a_session() {
    let app = spawn_app().await;
    for path in ["/", "/errors", "/sources", "/profiles", "/events/stream"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers()[header::LOCATION], "/login", "{path}");
    }
    let (status, html) = app.page("/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("name=\"token\""));
}

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
    assert!(html.contains("Recent events"));
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
    let (_, list) = app.page("/").await;
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

#[tokio::test]
async fn events_can_be_filtered_and_searched() {
    let app = spawn_app().await;
    let a = app.source_named("Alpha").await;
    let b = app.source_named("Beta").await;
    let first = app.send_ok(&a.hook, &json!({"x": 1})).await;
    let second = app.send_ok(&b.hook, &json!({"x": 2})).await;
    app.processed_event(&second[0]).await;
    app.login().await;
    let (_, html) = app.page(&format!("/?source_id={}", a.id)).await;
    assert!(html.contains(&first[0]));
    assert!(!html.contains(&second[0]));
    let (_, html) = app.page(&format!("/?q={}", second[0])).await;
    assert!(html.contains(&second[0]));
    assert!(!html.contains(&first[0]));
    let (_, html) = app.page("/?status=failed").await;
    assert!(!html.contains(&first[0]));
    // Nonsense filters are ignored, not a crash.
    let (status, _) = app.page("/?source_id=zzz&status=<x>&before=1").await;
    assert_eq!(status, StatusCode::OK);
}

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
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
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
    assert_eq!(response.status(), StatusCode::OK);
    let url = webhook_url_in(&response.text().await.unwrap()).expect("new URL");
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

#[tokio::test]
async fn the_live_tail_is_an_event_stream_behind_the_login() {
    let app = spawn_app().await;
    let source = app.source_named("Shop").await;
    app.login().await;
    let mut response = app
        .client
        .get(app.url("/events/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
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

#[tokio::test]
async fn profile_pages_are_placeholders_for_now() {
    let app = spawn_app().await;
    app.login().await;
    let (status, html) = app.page("/profiles?q=a%40b.c").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("identity module"));
    let (status, _) = app.page("/profiles/anything").await;
    assert_eq!(status, StatusCode::OK);
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
