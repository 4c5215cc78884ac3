//! What support staff need to find a customer (issue 16): event search by
//! email whatever the event's status, by name, by an order number and by
//! date; a browsable list of profiles; merge and erase from the profile
//! page; the refusal that split two profiles shown on both.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn ids_in(body: &Value) -> Vec<String> {
    body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect()
}

async fn search(app: &TestApp, query: &str) -> Value {
    app.api_json(&format!("/api/events?{query}")).await
}

/// A source whose mapping fails every event without a `type` (event_name
/// renders empty), and one with no mapping (its events stay unmapped).
async fn failing_and_unmapped(app: &TestApp) -> (TestSource, TestSource) {
    let failing = app
        .mapped_source(
            "Shop",
            json!({"event_name": "{{type}}", "email": "{{email}}"}),
        )
        .await;
    let unmapped = app.source_named("Looker").await;
    (failing, unmapped)
}

backend_tests! {
    #[tokio::test]
    async fn search_by_email_finds_failed_and_unmapped_events() {
        let app = spawn_app().await;
        let (failing, unmapped) = failing_and_unmapped(&app).await;
        let failed = app
            .send_processed(&failing.hook, &json!({"email": "Ada@Example.org"}))
            .await;
        assert_eq!(failed["status"], "failed");
        let waiting = app
            .send_processed(
                &unmapped.hook,
                &json!({"rows": [{"users.email": "ada@example.org", "n": 3}]}),
            )
            .await;
        assert_eq!(waiting["status"], "unmapped");
        app.send_processed(&unmapped.hook, &json!({"users.email": "bob@example.org"}))
            .await;

        // Normalised as a profile lookup is: trimmed, case ignored.
        let found = search(&app, "q=%20%20ADA@example.ORG%20").await;
        let mut ids = ids_in(&found);
        ids.sort();
        let mut expected = vec![
            failed["id"].as_str().unwrap().to_string(),
            waiting["id"].as_str().unwrap().to_string(),
        ];
        expected.sort();
        assert_eq!(ids, expected, "{found}");
        assert_eq!(found["scan_truncated"], false, "{found}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn search_by_event_name_and_by_an_exact_order_number() {
        let app = spawn_app().await;
        let shop = app
            .mapped_source(
                "Shop",
                json!({"event_name": "{{type}}", "email": "{{email}}"}),
            )
            .await;
        let placed = app
            .send_processed(
                &shop.hook,
                &json!({"type": "Order Placed", "email": "a@x.org", "order": {"number": 10}}),
            )
            .await;
        let refunded = app
            .send_processed(
                &shop.hook,
                &json!({"type": "Order Refunded", "email": "a@x.org", "order": {"number": 100}, "note": "was 10 items"}),
            )
            .await;
        let placed_id = placed["id"].as_str().unwrap().to_string();
        let refunded_id = refunded["id"].as_str().unwrap().to_string();

        let by_name = search(&app, "name=order%20placed").await;
        assert_eq!(ids_in(&by_name), vec![placed_id.clone()], "{by_name}");

        // A whole scalar value, not a substring of the JSON text.
        let by_order = search(&app, "q=10").await;
        assert_eq!(ids_in(&by_order), vec![placed_id.clone()], "{by_order}");
        let by_other = search(&app, "q=100").await;
        assert_eq!(ids_in(&by_other), vec![refunded_id], "{by_other}");
        let both = search(&app, "q=10&name=Order%20Refunded").await;
        assert!(ids_in(&both).is_empty(), "{both}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_date_range_filters_on_received_time_and_a_bad_date_is_refused() {
        let app = spawn_app().await;
        let source = app.source_named("Looker").await;
        let event = app
            .send_processed(&source.hook, &json!({"email": "a@x.org"}))
            .await;
        let id = event["id"].as_str().unwrap().to_string();
        let today = chrono::Utc::now().date_naive();
        let yesterday = today.pred_opt().unwrap();
        let tomorrow = today.succ_opt().unwrap();

        let today_only = search(&app, &format!("from={today}&to={today}")).await;
        assert_eq!(ids_in(&today_only), vec![id.clone()], "{today_only}");
        let until_yesterday = search(&app, &format!("to={yesterday}")).await;
        assert!(ids_in(&until_yesterday).is_empty(), "{until_yesterday}");
        let from_tomorrow = search(&app, &format!("from={tomorrow}")).await;
        assert!(ids_in(&from_tomorrow).is_empty(), "{from_tomorrow}");
        let received: chrono::DateTime<chrono::Utc> =
            event["received_at"].as_str().unwrap().parse().unwrap();
        let since = (received - chrono::Duration::seconds(1)).to_rfc3339();
        let rfc = app
            .client
            .get(app.url("/api/events"))
            .query(&[("from", since.as_str())])
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let rfc: Value = rfc.json().await.unwrap();
        assert_eq!(ids_in(&rfc), vec![id], "{rfc}");

        let bad = app.api_get("/api/events?from=yesterday").await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let body: Value = bad.json().await.unwrap();
        assert_eq!(body["code"], "invalid_query", "{body}");
        assert!(body["error"].as_str().unwrap().contains("from"), "{body}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_search_that_hits_its_scan_bound_says_so_and_can_continue() {
        let app = spawn_app().await;
        let source = app.source_named("Looker").await;
        let mut ids = Vec::new();
        for i in 0..5 {
            let event = app
                .send_processed(&source.hook, &json!({"email": format!("u{i}@x.org")}))
                .await;
            ids.push(event["id"].as_str().unwrap().to_string());
        }
        // The oldest matches; a scan of two events stops before it.
        let first = search(&app, "q=u0@x.org&scan=2").await;
        assert!(ids_in(&first).is_empty(), "{first}");
        assert_eq!(first["scan_truncated"], true, "{first}");
        assert_eq!(first["next"], ids[3], "{first}");
        let rest = search(&app, &format!("q=u0@x.org&before={}", ids[3])).await;
        assert_eq!(ids_in(&rest), vec![ids[0].clone()], "{rest}");
        assert_eq!(rest["scan_truncated"], false, "{rest}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_events_page_searches_and_shows_the_event_time() {
        let app = spawn_app().await;
        let (failing, _) = failing_and_unmapped(&app).await;
        let shop = app
            .mapped_source(
                "Orders",
                json!({"event_name": "{{type}}", "email": "{{email}}", "timestamp": "{{ts}}"}),
            )
            .await;
        app.send_processed(
            &shop.hook,
            &json!({"type": "Order Placed", "email": "zoe@x.org", "ts": "2025-06-01T12:34:56Z"}),
        )
        .await;
        let failed = app
            .send_processed(&failing.hook, &json!({"email": "kim@x.org"}))
            .await;
        app.login().await;

        let (status, html) = app.page("/events").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("Event time (UTC)"), "{html}");
        assert!(
            html.contains("2025-06-01 12:34:56"),
            "the mapped time is shown"
        );

        let (_, found) = app.page("/events?q=KIM@x.org").await;
        assert!(found.contains(failed["id"].as_str().unwrap()), "{found}");
        assert!(
            !found.contains("2025-06-01 12:34:56"),
            "zoe's event is not listed"
        );
        let (_, named) = app.page("/events?name=order+placed&from=2000-01-01").await;
        assert!(named.contains("2025-06-01 12:34:56"), "{named}");
        assert!(!named.contains(failed["id"].as_str().unwrap()));
        let (status, bad) = app.page("/events?from=soon").await;
        assert_eq!(status, StatusCode::OK);
        assert!(bad.contains("id=\"bad-range\""), "{bad}");
    }
}

/// A source mapping an email and an external id (`user`).
async fn people(app: &TestApp) -> TestSource {
    app.mapped_source(
        "Web",
        json!({"event_name": "{{type}}", "email": "{{email}}", "external_id": "{{user}}"}),
    )
    .await
}

async fn profile_of(app: &TestApp, source: &TestSource, body: Value) -> String {
    let event = app.send_processed(&source.hook, &body).await;
    event["profile_id"].as_str().expect("a profile").to_string()
}

fn profile_ids(body: &Value) -> Vec<String> {
    body["profiles"]
        .as_array()
        .expect("profiles")
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_string())
        .collect()
}

backend_tests! {
    #[tokio::test]
    async fn profiles_are_listed_newest_first_in_pages_of_fifty() {
        let app = spawn_app().await;
        let source = people(&app).await;
        let records: Vec<Value> = (0..55)
            .map(|i| json!({"type": "signup", "email": format!("user{i:02}@x.org")}))
            .collect();
        let ids = app.send_ok(&source.hook, &json!(records)).await;
        assert_eq!(ids.len(), 55);
        app.wait_until_resolved(ids.last().unwrap()).await;

        let first = app.api_json("/api/profiles").await;
        let page = first["profiles"].as_array().expect("profiles");
        assert_eq!(page.len(), 50, "{first}");
        assert_eq!(page[0]["emails"], json!(["user54@x.org"]));
        let next = first["next"].as_str().expect("a next cursor");
        let second = app.api_json(&format!("/api/profiles?before={next}")).await;
        let rest = second["profiles"].as_array().expect("profiles");
        assert_eq!(rest.len(), 5, "{second}");
        assert_eq!(rest[4]["emails"], json!(["user00@x.org"]));
        assert!(second["next"].is_null());

        app.login().await;
        let (status, html) = app.page("/profiles").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(html.matches("href=\"/profiles/").count(), 50, "{html}");
        assert!(html.contains("user54@x.org") && !html.contains("user04@x.org"));
        assert!(html.contains("id=\"older-profiles\""));
        let (_, older) = app.page(&format!("/profiles?before={next}")).await;
        assert!(older.contains("user00@x.org") && !older.contains("user54@x.org"));
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_profile_list_searches_by_identifier_prefix_and_keeps_lookups() {
        let app = spawn_app().await;
        let source = people(&app).await;
        let ada = profile_of(&app, &source, json!({"type": "a", "email": "ada@x.org"})).await;
        let adam = profile_of(&app, &source, json!({"type": "a", "email": "adam@x.org"})).await;
        let bob = profile_of(
            &app,
            &source,
            json!({"type": "a", "email": "bob@x.org", "user": "ADA-7"}),
        )
        .await;

        let found = app.api_json("/api/profiles?q=%20ADA").await;
        assert_eq!(
            profile_ids(&found),
            vec![bob.clone(), adam.clone(), ada.clone()],
            "{found}"
        );
        let emails = app.api_json("/api/profiles?q=ada@").await;
        assert_eq!(profile_ids(&emails), vec![ada.clone()], "{emails}");
        let by_id = app.api_json(&format!("/api/profiles?q={adam}")).await;
        assert_eq!(profile_ids(&by_id), vec![adam.clone()]);
        let none = app.api_json("/api/profiles?q=zed").await;
        assert!(profile_ids(&none).is_empty());
        // With an identifier parameter it is the lookup it always was.
        let lookup = app.profile_by_email(" ADA@x.org").await;
        assert_eq!(lookup["id"], ada);
        assert!(lookup.get("profiles").is_none());

        app.login().await;
        let (status, html) = app.page("/profiles?q=AD").await;
        assert_eq!(status, StatusCode::OK);
        for id in [&ada, &adam, &bob] {
            assert!(html.contains(id.as_str()), "{id} listed");
        }
        let (_, miss) = app.page("/profiles?q=zed").await;
        assert!(miss.contains("id=\"no-profile\""));
    }
}

backend_tests! {
    #[tokio::test]
    async fn merge_from_the_profile_page_confirms_then_posts_and_is_audited() {
        let app = spawn_app().await;
        let source = people(&app).await;
        let kept = profile_of(&app, &source, json!({"type": "a", "email": "ann@x.org"})).await;
        let gone = profile_of(
            &app,
            &source,
            json!({"type": "a", "email": "ann.work@x.org"}),
        )
        .await;
        app.login().await;

        let (_, page) = app.page(&format!("/profiles/{kept}")).await;
        assert!(page.contains(&format!("action=\"/profiles/{kept}/merge\"")));
        let confirm = format!("/profiles/{kept}/merge?from={gone}");
        let (status, html) = app.page(&confirm).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("id=\"merge-from\"") && html.contains("id=\"merge-into\""));
        assert!(html.contains("ann@x.org") && html.contains("ann.work@x.org"));
        let csrf = csrf_in(&html).expect("csrf");

        let forged = app
            .post_form(&format!("/profiles/{kept}/merge"), &[("from", &gone)])
            .await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        let merged = app
            .post_form(
                &format!("/profiles/{kept}/merge"),
                &[("csrf", &csrf), ("from", &gone)],
            )
            .await;
        assert_eq!(merged.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            merged.headers()["location"],
            format!("/profiles/{kept}").as_str()
        );
        let profile = app.profile(&kept).await;
        assert_eq!(profile["merged_from"], json!([gone]));
        let history = app.profile_history(&kept).await;
        assert!(
            history
                .iter()
                .any(|l| l["kind"] == "manual_merge" && l["detail"]["from"] == gone),
            "{history:?}"
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn erase_from_the_profile_page_asks_for_the_email_and_is_audited() {
        let app = spawn_app().await;
        let source = people(&app).await;
        let id = profile_of(&app, &source, json!({"type": "a", "email": "eve@x.org"})).await;
        app.login().await;
        let path = format!("/profiles/{id}/erase");
        let (status, html) = app.page(&path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("the profile's email"), "{html}");
        let csrf = csrf_in(&html).expect("csrf");

        let wrong = app
            .post_form(&path, &[("csrf", &csrf), ("confirm", "someone@x.org")])
            .await;
        assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.profile(&id).await["emails"], json!(["eve@x.org"]));
        let forged = app.post_form(&path, &[("confirm", "eve@x.org")]).await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);

        let erased = app
            .post_form(&path, &[("csrf", &csrf), ("confirm", " EVE@x.org ")])
            .await;
        assert_eq!(erased.status(), StatusCode::SEE_OTHER);
        let location = erased.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(location, format!("/profiles?erased={id}"));
        let (_, after) = app.page(&location).await;
        assert!(after.contains("id=\"erased-note\""));
        let gone = app.api_get(&format!("/api/profiles/{id}")).await;
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        let history = app.profile_history(&id).await;
        assert!(
            history.iter().any(|l| l["kind"] == "erasure"),
            "{history:?}"
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_refusal_that_split_two_profiles_shows_on_both() {
        let app = spawn_app().await;
        let source = people(&app).await;
        let owner = profile_of(
            &app,
            &source,
            json!({"type": "a", "email": "family@x.org", "user": "x1"}),
        )
        .await;
        let second = app
            .send_processed(
                &source.hook,
                &json!({"type": "a", "email": "family@x.org", "user": "x2"}),
            )
            .await;
        let other = second["profile_id"].as_str().unwrap().to_string();
        let event = second["id"].as_str().unwrap().to_string();
        assert_ne!(owner, other);

        for here in [&owner, &other] {
            let history = app.profile_history(here).await;
            let line = history
                .iter()
                .find(|l| l["kind"] == "refusal")
                .unwrap_or_else(|| panic!("a refusal in {here}'s history: {history:?}"));
            assert_eq!(line["event_id"], event);
            let refusal = &line["detail"]["refusals"][0];
            assert_eq!(refusal["reason"], "external_id_conflict");
            assert_eq!(refusal["owner"], owner.as_str());
            assert_eq!(line["detail"]["joined"], other.as_str());
        }

        app.login().await;
        for (here, there) in [(&owner, &other), (&other, &owner)] {
            let (_, html) = app.page(&format!("/profiles/{here}")).await;
            let history = &html[html.find("id=\"history\"").expect("history")..];
            assert!(history.contains("family@x.org"), "{history}");
            assert!(history.contains("not joined"), "{history}");
            assert!(
                history.contains(&format!("href=\"/profiles/{there}\"")),
                "links to the other profile: {history}"
            );
            assert!(history.contains(&format!("href=\"/events/{event}\"")));
        }
    }
}
