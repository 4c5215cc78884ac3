//! Identity resolution, told as support staff's stories: who is this person,
//! why are these two profiles one (or not), through the real server over HTTP.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn sorted(value: &Value) -> Vec<String> {
    let mut out: Vec<String> = value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect();
    out.sort();
    out
}

backend_tests! {
    #[tokio::test]
    async fn an_anonymous_visitor_gets_a_profile_with_one_visitor_id() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let event = app
            .send_processed(&source.hook, &json!({"type": "page", "anon": "v1"}))
            .await;
        assert_eq!(event["status"], "resolved");
        assert_eq!(event["resolution"], "create");
        let profile = app.profile_by("visitor_id", "v1").await;
        assert_eq!(profile["id"], event["profile_id"]);
        assert_eq!(profile["visitor_ids"], json!(["v1"]));
        assert_eq!(profile["emails"], json!([]));
        assert_eq!(profile["external_ids"], json!([]));
        assert_eq!(profile["event_count"], 1);
        let same = app.profile(event["profile_id"].as_str().unwrap()).await;
        assert_eq!(same, profile);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_visitor_who_signs_up_keeps_the_same_profile() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let anonymous = app
            .send_processed(&source.hook, &json!({"type": "page", "anon": "v1"}))
            .await;
        let identified = app
            .send_processed(
                &source.hook,
                &json!({"type": "signup", "anon": "v1", "email": "ann@example.org"}),
            )
            .await;
        assert_eq!(identified["resolution"], "attach");
        assert_eq!(identified["profile_id"], anonymous["profile_id"]);
        let profile = app.profile_by_email("ann@example.org").await;
        assert_eq!(profile["id"], anonymous["profile_id"]);
        assert_eq!(profile["visitor_ids"], json!(["v1"]));
        assert_eq!(profile["emails"], json!(["ann@example.org"]));
        assert_eq!(profile["event_count"], 2);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_chain_of_identifiers_across_devices_ends_in_one_profile() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        for body in [
            json!({"type": "signup", "anon": "v1", "email": "e1@example.org"}),
            json!({"type": "login", "email": "e1@example.org", "user": "x1"}),
            json!({"type": "page", "anon": "v2", "user": "x1"}),
        ] {
            let event = app.send_processed(&source.hook, &body).await;
            assert_eq!(event["status"], "resolved", "{body}");
        }
        let profile = app.profile_by("visitor_id", "v2").await;
        assert_eq!(sorted(&profile["visitor_ids"]), vec!["v1", "v2"]);
        assert_eq!(profile["emails"], json!(["e1@example.org"]));
        assert_eq!(profile["external_ids"], json!(["x1"]));
        for (kind, value) in [
            ("visitor_id", "v1"),
            ("email", "e1@example.org"),
            ("external_id", "x1"),
        ] {
            assert_eq!(app.profile_by(kind, value).await["id"], profile["id"]);
        }
        assert_eq!(profile["event_count"], 3);
    }
}

backend_tests! {
    #[tokio::test]
    async fn two_customers_sharing_an_email_are_never_merged() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let first = app
            .send_processed(
                &source.hook,
                &json!({"type": "order", "user": "x1", "email": "family@example.org"}),
            )
            .await;
        assert_eq!(first["resolution"], "create");
        let second = app
            .send_processed(
                &source.hook,
                &json!({"type": "order", "user": "x2", "email": "family@example.org"}),
            )
            .await;
        assert_eq!(second["status"], "resolved");
        assert_ne!(second["profile_id"], first["profile_id"]);
        let warnings = second["warnings"].to_string();
        assert!(warnings.contains("external_id_conflict"), "{warnings}");

        let owner = app.profile_by_email("family@example.org").await;
        assert_eq!(owner["id"], first["profile_id"]);
        assert_eq!(owner["external_ids"], json!(["x1"]));
        let other = app.profile_by("external_id", "x2").await;
        assert_eq!(other["id"], second["profile_id"]);
        assert_eq!(other["emails"], json!([]));

        let logged = app.errors_at(&source, "identity").await;
        assert!(
            logged.iter().any(|e| e["code"] == "external_id_conflict"
                && e["level"] == "warning"
                && e["event_id"] == second["id"]),
            "{logged:?}"
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn placeholder_identifiers_are_dropped_and_the_event_is_kept() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let event = app
            .send_processed(
                &source.hook,
                &json!({"type": "page", "anon": "anonymous", "email": "null", "user": "0"}),
            )
            .await;
        assert_eq!(event["status"], "resolved");
        assert_eq!(event["profile_id"], Value::Null);
        assert!(event["resolution"]
            .as_str()
            .unwrap()
            .starts_with("refused: "));
        let warnings = event["warnings"].to_string();
        for value in ["anonymous", "null", "`0`"] {
            assert!(warnings.contains(value), "{value} in {warnings}");
        }

        let quoted = app
            .send_processed(
                &source.hook,
                &json!({"type": "page", "anon": "\"undefined\"", "email": "real@example.org"}),
            )
            .await;
        assert_eq!(quoted["status"], "resolved");
        assert_eq!(quoted["resolution"], "create");
        assert!(quoted["warnings"].to_string().contains("undefined"));
        let profile = app.profile_by_email("real@example.org").await;
        assert_eq!(profile["visitor_ids"], json!([]));

        for (kind, value) in [
            ("visitor_id", "anonymous"),
            ("email", "null"),
            ("external_id", "0"),
            ("visitor_id", "\"undefined\""),
        ] {
            let r = app.try_profile_by(kind, value).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{kind}={value}");
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn an_email_in_any_case_or_spacing_finds_the_same_profile() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let first = app
            .send_processed(
                &source.hook,
                &json!({"type": "signup", "email": "  Ann@Example.ORG "}),
            )
            .await;
        let second = app
            .send_processed(
                &source.hook,
                &json!({"type": "order", "email": "ann@example.org"}),
            )
            .await;
        assert_eq!(second["profile_id"], first["profile_id"]);
        let profile = app.profile_by_email("ann@example.org").await;
        assert_eq!(profile["emails"], json!(["ann@example.org"]));
        assert_eq!(
            app.profile_by_email("  Ann@Example.ORG ").await["id"],
            profile["id"]
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_same_event_delivered_twice_is_counted_once() {
        let app = spawn_app().await;
        let mut mapping = people_mapping();
        mapping["idempotency_key"] = json!("{{id}}");
        let source = app.mapped_source("Web", mapping).await;
        let body =
            json!({"id": "delivery-1", "type": "order", "email": "ann@example.org", "plan": "pro"});
        let first = app.send_processed(&source.hook, &body).await;
        let again = app.send_processed(&source.hook, &body).await;
        assert_eq!(first["status"], "resolved");
        assert_eq!(again["status"], "duplicate");
        let profile = app.profile_by_email("ann@example.org").await;
        assert_eq!(profile["event_count"], 1);
        assert_eq!(
            app.profile_events(profile["id"].as_str().unwrap())
                .await
                .len(),
            1
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn forty_concurrent_requests_sharing_one_email_make_one_profile() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let sends = (0..40).map(|n| {
            let body = json!({"type": "page", "anon": format!("v{n}"), "email": "shared@example.org"});
            let app = &app;
            let hook = source.hook.clone();
            async move { app.send_ok(&hook, &body).await }
        });
        let ids: Vec<String> = futures::future::join_all(sends)
            .await
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(ids.len(), 40);
        for id in &ids {
            app.wait_until_resolved(id).await;
        }
        let profile = app.profile_by_email("shared@example.org").await;
        let mut expected: Vec<String> = (0..40).map(|n| format!("v{n}")).collect();
        expected.sort();
        assert_eq!(sorted(&profile["visitor_ids"]), expected);
        assert_eq!(profile["event_count"], 40);
        for n in [0, 17, 39] {
            let by_visitor = app.profile_by("visitor_id", &format!("v{n}")).await;
            assert_eq!(by_visitor["id"], profile["id"]);
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn an_event_linking_two_anonymous_profiles_merges_them_into_the_older() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let older = app
            .send_processed(&source.hook, &json!({"type": "page", "anon": "v1"}))
            .await;
        let newer = app
            .send_processed(
                &source.hook,
                &json!({"type": "page", "anon": "v2", "email": "ann@example.org"}),
            )
            .await;
        assert_ne!(older["profile_id"], newer["profile_id"]);
        // One event carries v1 and (through the email) v2's profile.
        let linking = app
            .send_processed(
                &source.hook,
                &json!({"type": "login", "anon": "v1", "email": "ann@example.org"}),
            )
            .await;
        assert_eq!(linking["resolution"], "merge");
        assert_eq!(linking["profile_id"], older["profile_id"]);

        let survivor_id = older["profile_id"].as_str().unwrap();
        let absorbed_id = newer["profile_id"].as_str().unwrap();
        let absorbed = app.profile(absorbed_id).await;
        assert_eq!(
            absorbed["id"], survivor_id,
            "the old id answers with the survivor"
        );
        assert_eq!(sorted(&absorbed["visitor_ids"]), vec!["v1", "v2"]);
        assert_eq!(absorbed["merged_from"], json!([absorbed_id]));

        let history = app.profile_history(survivor_id).await;
        let merge = history
            .iter()
            .find(|h| h["kind"] == "merge")
            .expect("a merge line");
        assert_eq!(merge["event_id"], linking["id"]);
        assert!(merge["detail"].to_string().contains(absorbed_id));

        let events = app.profile_events(survivor_id).await;
        assert_eq!(events.len(), 3, "events of both profiles");
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_newest_trait_wins_whatever_the_arrival_order() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        app.send_processed(
            &source.hook,
            &json!({"type": "plan", "user": "x1", "ts": "2024-01-02T00:00:00Z", "plan": "pro"}),
        )
        .await;
        app.send_processed(
            &source.hook,
            &json!({"type": "plan", "user": "x1", "ts": "2024-01-01T00:00:00Z", "plan": "free"}),
        )
        .await;
        let profile = app.profile_by("external_id", "x1").await;
        assert_eq!(profile["traits"]["plan"], "pro");

        app.send_processed(
            &source.hook,
            &json!({"type": "plan", "user": "x1", "ts": "2024-01-03T00:00:00Z", "plan": "team"}),
        )
        .await;
        let profile = app.profile_by("external_id", "x1").await;
        assert_eq!(profile["traits"]["plan"], "team");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_shop_order_and_a_payment_join_on_one_profile_by_email() {
        let app = spawn_app().await;
        let shop = app
            .mapped_source(
                "Shop",
                json!({"event_name": "Order Placed", "email": "{{customer.email}}", "event_id": "{{id}}"}),
            )
            .await;
        let payments = app
            .mapped_source(
                "Payments",
                json!({"event_name": "{{type}}", "email": "{{data.object.receipt_email}}", "external_id": "{{data.object.customer}}"}),
            )
            .await;
        let order = app
            .send_processed(
                &shop.hook,
                &json!({"id": "o-1", "customer": {"email": "Ann@Example.org"}, "total": 99.5}),
            )
            .await;
        let payment = app
            .send_processed(
                &payments.hook,
                &json!({"type": "charge.succeeded", "data": {"object": {"customer": "cus_1", "receipt_email": "ann@example.org"}}}),
            )
            .await;
        assert_eq!(payment["profile_id"], order["profile_id"]);
        let profile = app.profile_by("external_id", "cus_1").await;
        let events = app.profile_events(profile["id"].as_str().unwrap()).await;
        let ids: Vec<&Value> = events.iter().map(|e| &e["id"]).collect();
        assert_eq!(ids, vec![&payment["id"], &order["id"]], "newest first");
        let sources: Vec<&Value> = events.iter().map(|e| &e["source_id"]).collect();
        assert_eq!(sources, vec![&json!(payments.id), &json!(shop.id)]);
    }
}

backend_tests! {
    #[tokio::test]
    async fn support_merges_two_customers_by_hand() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let a = app
            .send_processed(
                &source.hook,
                &json!({"type": "order", "user": "x1", "email": "old@example.org"}),
            )
            .await;
        let b = app
            .send_processed(
                &source.hook,
                &json!({"type": "order", "user": "x2", "email": "new@example.org"}),
            )
            .await;
        let a_id = a["profile_id"].as_str().unwrap();
        let b_id = b["profile_id"].as_str().unwrap();
        assert_ne!(a_id, b_id);

        let r = app
            .api_send(
                Method::POST,
                &format!("/api/profiles/{a_id}/merge"),
                json!({"into": b_id}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let merged: Value = r.json().await.unwrap();
        assert_eq!(merged["id"], b_id);
        assert_eq!(sorted(&merged["external_ids"]), vec!["x1", "x2"]);
        assert_eq!(
            sorted(&merged["emails"]),
            vec!["new@example.org", "old@example.org"]
        );
        assert_eq!(app.profile(a_id).await["id"], b_id);
        assert_eq!(app.profile_by("external_id", "x1").await["id"], b_id);
        let history = app.profile_history(b_id).await;
        assert!(history.iter().any(|h| h["kind"] == "manual_merge"));

        // Events keep attaching to the merged profile.
        let later = app
            .send_processed(&source.hook, &json!({"type": "order", "user": "x1"}))
            .await;
        assert_eq!(later["profile_id"], b_id);
    }
}

backend_tests! {
    #[tokio::test]
    async fn erasing_a_profile_removes_it_and_the_email_from_its_events() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let event = app
            .send_processed(
                &source.hook,
                &json!({"type": "order", "anon": "v1", "email": "forget.me@example.org", "plan": "pro"}),
            )
            .await;
        let id = event["profile_id"].as_str().unwrap().to_string();
        let r = app
            .api_send(Method::DELETE, &format!("/api/profiles/{id}"), json!({}))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let r = app.api_get(&format!("/api/profiles/{id}")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = app.try_profile_by("email", "forget.me@example.org").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = app
            .api_send(Method::DELETE, &format!("/api/profiles/{id}"), json!({}))
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);

        let stored = app.event(event["id"].as_str().unwrap()).await;
        let text = stored.to_string().to_lowercase();
        assert!(!text.contains("forget.me"), "{text}");
        assert_eq!(stored["profile_id"], Value::Null);
    }
}

backend_tests! {
    #[tokio::test]
    async fn erasing_a_merged_profile_by_an_old_id_scrubs_the_events_of_both() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let older = app
            .send_processed(&source.hook, &json!({"type": "page", "anon": "v1"}))
            .await;
        let newer = app
            .send_processed(
                &source.hook,
                &json!({"type": "page", "anon": "v2", "email": "gone@example.org"}),
            )
            .await;
        let linking = app
            .send_processed(
                &source.hook,
                &json!({"type": "login", "anon": "v1", "email": "gone@example.org"}),
            )
            .await;
        assert_eq!(linking["resolution"], "merge");
        let absorbed_id = newer["profile_id"].as_str().unwrap();
        let r = app
            .api_send(
                Method::DELETE,
                &format!("/api/profiles/{absorbed_id}"),
                json!({}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        for profile in [absorbed_id, older["profile_id"].as_str().unwrap()] {
            let r = app.api_get(&format!("/api/profiles/{profile}")).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND);
        }
        for (kind, value) in [
            ("visitor_id", "v1"),
            ("visitor_id", "v2"),
            ("email", "gone@example.org"),
        ] {
            let r = app.try_profile_by(kind, value).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{kind}={value}");
        }
        for event in [&older, &newer, &linking] {
            let stored = app.event(event["id"].as_str().unwrap()).await;
            let text = stored.to_string();
            assert!(!text.contains("gone@example.org"), "{text}");
            assert!(!text.contains("\"v2\""), "{text}");
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_source_can_block_its_own_placeholder_values() {
        let app = spawn_app().await;
        let source = app
            .create_source(json!({"name": "Web", "blocked_values": ["test@example.org", "cafebabe"]}))
            .await;
        app.put_mapping(&source, people_mapping()).await;
        let event = app
            .send_processed(
                &source.hook,
                &json!({"type": "page", "anon": "CAFEBABE", "email": "Test@Example.org", "user": "x1"}),
            )
            .await;
        assert_eq!(event["status"], "resolved");
        let profile = app.profile_by("external_id", "x1").await;
        assert_eq!(profile["id"], event["profile_id"]);
        assert_eq!(profile["emails"], json!([]));
        assert_eq!(profile["visitor_ids"], json!([]));
        let warnings = event["warnings"].to_string();
        assert!(warnings.contains("test@example.org"), "{warnings}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn after_a_merge_a_profiles_events_name_the_live_profile_not_the_absorbed_one() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let older = app
            .send_processed(&source.hook, &json!({"type": "page", "anon": "v1"}))
            .await;
        let newer = app
            .send_processed(
                &source.hook,
                &json!({"type": "page", "anon": "v2", "email": "ann@example.org"}),
            )
            .await;
        app.send_processed(
            &source.hook,
            &json!({"type": "login", "anon": "v1", "email": "ann@example.org"}),
        )
        .await;
        let survivor_id = older["profile_id"].as_str().unwrap();
        let absorbed_id = newer["profile_id"].as_str().unwrap();
        assert_ne!(survivor_id, absorbed_id);

        // The API: every event names the survivor; the absorbed one is `via`.
        let events = app.profile_events(survivor_id).await;
        assert_eq!(events.len(), 3);
        for event in &events {
            assert_eq!(event["profile_id"], survivor_id, "{event}");
        }
        let via: Vec<&Value> = events
            .iter()
            .filter(|e| e["id"] == newer["id"])
            .map(|e| &e["via_profile_id"])
            .collect();
        assert_eq!(via, vec![&json!(absorbed_id)]);
        // The event itself names the live profile too.
        assert_eq!(
            app.event(newer["id"].as_str().unwrap()).await["profile_id"],
            survivor_id
        );

        // The profile page's events table: the survivor, never a link to the absorbed id.
        app.login().await;
        let (_, html) = app.page(&format!("/profiles/{survivor_id}")).await;
        let rows: Vec<&str> = html
            .split("<tr data-id=\"")
            .skip(1)
            .map(|row| row.split("</tr>").next().unwrap_or(row))
            .collect();
        assert_eq!(rows.len(), 3, "{html}");
        for row in &rows {
            assert!(
                row.contains(&format!("href=\"/profiles/{survivor_id}\"")),
                "{row}"
            );
            assert!(
                !row.contains(&format!("href=\"/profiles/{absorbed_id}\"")),
                "{row}"
            );
        }
        assert!(html.contains("via merged profile"), "{html}");
    }
}
