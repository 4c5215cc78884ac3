//! Pages that are safe, in headless Chromium (issue 16): Back after logout
//! shows no customer data, a reload after create or rotate repeats
//! nothing, a deep link survives the login, and at phone width Log out is
//! still there, and an open live tail stops when its session is logged
//! out in another tab. One browser for the five stories (Chromium is heavy on a
//! shared machine); each starts logged out.

mod common;

use common::browser::{click, wait_for, Browser};
use common::*;
use fantoccini::{Client, Locator};
use serde_json::json;
use std::time::Duration;

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_stay_safe_after_logout_reload_and_deep_links() {
        let app = spawn_app().await;
        let Some(browser) = Browser::start().await else {
            return;
        };
        let b = browser.client.clone();
        the_live_tail_stops_when_another_tab_logs_out(&b, &app).await;
        back_after_logout_shows_the_login_not_the_event(&b, &app).await;
        reload_after_create_and_rotate_repeats_nothing(&b, &app).await;
        a_deep_link_survives_the_login(&b, &app).await;
        log_out_is_reachable_at_phone_width(&b, &app).await;
        browser.close().await;
    }
}

/// Logs in from the login page itself and waits for the navigation; it
/// does not depend on what `/` shows.
async fn log_in_here(b: &Client, app: &TestApp) {
    b.goto(&app.url("/login")).await.unwrap();
    type_token_and_submit(b).await;
}

async fn type_token_and_submit(b: &Client) {
    wait_for(b, "#token")
        .await
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    click(b, "form[action='/login'] button[type=submit]").await;
    wait_for(b, "header nav").await;
}

async fn log_out(b: &Client) {
    click(b, "form.logout button").await;
    wait_for(b, "#token").await;
}

async fn path_of(b: &Client) -> String {
    b.current_url().await.unwrap().path().to_string()
}

/// Waits (polling) until the page's path is `path`.
async fn wait_for_path(b: &Client, path: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        last = path_of(b).await;
        if last == path {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the browser did not reach {path} within 10s; it is at {last}");
}

/// Tab A watches the live tail; tab B (same session cookie) logs out. The
/// server ends A's stream at its next poll and A stops reconnecting, so an
/// event sent afterwards never reaches A's screen.
async fn the_live_tail_stops_when_another_tab_logs_out(b: &Client, app: &TestApp) {
    let source = app.source_named("Tail").await;
    log_in_here(b, app).await;
    let tail_tab = b.window().await.unwrap();
    b.goto(&app.url("/events")).await.unwrap();
    wait_for(b, "#live:not([hidden])").await;
    let before = app
        .send_ok(&source.hook, &json!({"email": "before.logout@example.com"}))
        .await;
    wait_for(b, &format!("tr[data-id=\"{}\"]", before[0])).await;

    let other = b.new_window(true).await.unwrap();
    b.switch_to_window(other.handle).await.unwrap();
    b.goto(&app.url("/events")).await.unwrap();
    log_out(b).await;
    b.close_window().await.unwrap();
    b.switch_to_window(tail_tab).await.unwrap();

    // The stream's `end` hides the live marker: the server noticed.
    wait_for(b, "#live[hidden]").await;
    let after = app
        .send_ok(&source.hook, &json!({"email": "after.logout@example.com"}))
        .await;
    app.processed_event(&after[0]).await;
    // Three of the tail's one-second polls: a stream still open would have
    // shown the event by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let html = b.source().await.unwrap();
    assert!(
        !html.contains("after.logout@example.com") && !html.contains(&after[0]),
        "an event sent after logout reached the logged-out tab"
    );
}

async fn back_after_logout_shows_the_login_not_the_event(b: &Client, app: &TestApp) {
    let source = app.source_named("Shop").await;
    let email = "back.button@example.com";
    let ids = app.send_ok(&source.hook, &json!({"email": email})).await;
    app.processed_event(&ids[0]).await;
    log_in_here(b, app).await;
    let event_page = format!("/events/{}", ids[0]);
    b.goto(&app.url(&event_page)).await.unwrap();
    wait_for(b, "header nav").await;
    assert!(b.source().await.unwrap().contains(email), "the event shows");
    note_how_the_page_comes_back(b).await;
    log_out(b).await;

    b.back().await.unwrap();
    // Either the browser reloads (the cache was cleared: the server sends
    // the login) or it restores the page and app.js replaces it.
    wait_for(b, "#token").await;
    report_how_the_page_came_back(b, "Back after logout").await;
    assert_eq!(path_of(b).await, "/login");
    let html = b.source().await.unwrap();
    assert!(!html.contains(email), "Back shows no customer data: {html}");

    // A session that ends without this browser's cookie changing (it
    // expired, the server restarted): Chromium then does restore the page
    // from its back/forward cache, and app.js's `pageshow` check is what
    // puts the login in its place.
    log_in_here(b, app).await;
    b.goto(&app.url(&event_page)).await.unwrap();
    wait_for(b, "header nav").await;
    note_how_the_page_comes_back(b).await;
    b.goto(&app.url("/sources")).await.unwrap();
    wait_for(b, "header nav").await;
    let cookie = b.get_named_cookie("inlet_session").await.unwrap();
    app.state
        .sessions
        .end(cookie.value())
        .expect("end the session");
    b.back().await.unwrap();
    wait_for(b, "#token").await;
    report_how_the_page_came_back(b, "Back after the session ended server-side").await;
    assert_eq!(path_of(b).await, "/login");
    let html = b.source().await.unwrap();
    assert!(!html.contains(email), "a restored page is replaced: {html}");
}

/// Records, in the tab's sessionStorage (which outlives the page and which
/// `Clear-Site-Data: "cache"` leaves alone), whether a later `pageshow` of
/// this page was a restore from the back/forward cache.
async fn note_how_the_page_comes_back(b: &Client) {
    b.execute(
        "window.addEventListener('pageshow', function (e) { \
           sessionStorage.setItem('restored', String(e.persisted)); });",
        vec![],
    )
    .await
    .unwrap();
}

/// Says (on stderr, not asserted: it is the browser's choice) whether Back
/// restored the page from the back/forward cache, and why not if Chromium
/// tells (`notRestoredReasons`).
async fn report_how_the_page_came_back(b: &Client, what: &str) {
    let seen = b
        .execute(
            "var nav = performance.getEntriesByType('navigation')[0] || {}; \
             return JSON.stringify({restored: sessionStorage.getItem('restored'), \
               type: nav.type, reasons: nav.notRestoredReasons || null});",
            vec![],
        )
        .await
        .unwrap();
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{what}: {seen}");
}

async fn reload_after_create_and_rotate_repeats_nothing(b: &Client, app: &TestApp) {
    let before = sources(app).await;
    log_in_here(b, app).await;
    b.goto(&app.url("/sources")).await.unwrap();
    wait_for(b, "#create input[name=name]")
        .await
        .send_keys("Reloaded")
        .await
        .unwrap();
    click(b, "#create button[type=submit]").await;
    let created_url = webhook_url_shown(b).await;

    b.refresh().await.unwrap();
    wait_for(b, "#url-help").await;
    assert!(
        no_webhook_url(b).await,
        "a reload does not show the URL again"
    );
    assert_eq!(sources(app).await, before + 1, "a reload creates nothing");
    let hook = created_url.trim_start_matches(&app.base).to_string();
    app.send_ok(&hook, &json!({"after": "create"})).await;

    click(b, "form[action$='/rotate'] button").await;
    b.accept_alert().await.unwrap();
    let rotated_url = webhook_url_shown(b).await;
    assert_ne!(rotated_url, created_url);
    b.refresh().await.unwrap();
    wait_for(b, "#url-help").await;
    assert!(no_webhook_url(b).await, "a reload does not show it again");
    // ...and did not rotate again: the URL shown after the rotate works.
    let hook = rotated_url.trim_start_matches(&app.base).to_string();
    app.send_ok(&hook, &json!({"after": "rotate"})).await;
    log_out(b).await;
}

async fn webhook_url_shown(b: &Client) -> String {
    wait_for(b, "#webhook-url")
        .await
        .prop("value")
        .await
        .unwrap()
        .expect("the URL field has a value")
}

async fn no_webhook_url(b: &Client) -> bool {
    b.find(Locator::Css("#webhook-url")).await.is_err()
}

async fn sources(app: &TestApp) -> usize {
    app.api_json("/api/sources").await["sources"]
        .as_array()
        .unwrap()
        .len()
}

async fn a_deep_link_survives_the_login(b: &Client, app: &TestApp) {
    b.goto(&app.url("/profiles")).await.unwrap();
    wait_for(b, "#token").await;
    assert_eq!(path_of(b).await, "/login");
    type_token_and_submit(b).await;
    wait_for_path(b, "/profiles").await;
    log_out(b).await;
}

async fn log_out_is_reachable_at_phone_width(b: &Client, app: &TestApp) {
    b.set_window_size(375, 800).await.unwrap();
    log_in_here(b, app).await;
    b.goto(&app.url("/sources")).await.unwrap();
    let button = wait_for(b, "form.logout button").await;
    assert!(button.is_displayed().await.unwrap(), "Log out is displayed");
    let width: f64 = b
        .execute("return document.documentElement.clientWidth;", vec![])
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    let (x, _, w, _) = button.rectangle().await.unwrap();
    assert!(
        x >= 0.0 && x + w <= width,
        "Log out at {x}+{w} fits in {width}px"
    );
    button.click().await.unwrap();
    wait_for(b, "#token").await;
    assert_eq!(path_of(b).await, "/login");
    b.set_window_size(1280, 900).await.unwrap();
}
