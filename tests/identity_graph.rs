//! How a profile was joined (issue 17, "Explained merges"), as support
//! staff ask it: "why are these two people one profile?" answered by one
//! event, through `GET /api/profiles/{id}/graph` and the profile page,
//! over the real server.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn people(app: &TestApp) -> TestSource {
    app.mapped_source(
        "Web",
        json!({
            "event_name": "{{type}}",
            "visitor_id": "{{anon}}",
            "email": "{{email}}",
            "external_id": "{{user}}"
        }),
    )
    .await
}

async fn graph(app: &TestApp, id: &str) -> Value {
    app.api_json(&format!("/api/profiles/{id}/graph")).await
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("a string: {v}"))
        .to_string()
}

fn identifier<'g>(graph: &'g Value, kind: &str, value: &str) -> &'g Value {
    graph["identifiers"]
        .as_array()
        .expect("identifiers")
        .iter()
        .find(|i| i["key"]["kind"] == kind && i["key"]["value"] == value)
        .unwrap_or_else(|| panic!("{kind} {value} in {graph}"))
}

/// `text` as the page's templates escape it.
fn escaped(text: &str) -> String {
    text.replace('\'', "&#x27;").replace('`', "&#x60;")
}

/// The part of a profile page inside the graph section.
fn graph_section(html: &str) -> &str {
    let start = html.find("id=\"profile-graph\"").expect("graph section");
    let end = html[start..].find("</section>").expect("section end") + start;
    &html[start..end]
}

backend_tests! {
    #[tokio::test]
    async fn two_profiles_merged_by_one_event_name_that_event_and_each_identifiers_first() {
        let app = spawn_app().await;
        let source = people(&app).await;
        let phone = app
            .send_processed(&source.hook, &json!({"type": "view", "anon": "v-1"}))
            .await;
        let shop = app
            .send_processed(
                &source.hook,
                &json!({"type": "signup", "user": "42", "email": "ann@x.org"}),
            )
            .await;
        let joiner = app
            .send_processed(
                &source.hook,
                &json!({"type": "login", "anon": "v-1", "email": "ann@x.org"}),
            )
            .await;
        assert_eq!(joiner["resolution"], "merge");
        let absorbed = str_of(&phone["profile_id"]);
        let live = str_of(&shop["profile_id"]);

        // The absorbed id answers the live profile's graph.
        let g = graph(&app, &absorbed).await;
        assert_eq!(g, graph(&app, &live).await);
        assert_eq!(g["profile_id"], live.as_str());
        assert_eq!(g["nodes"].as_array().unwrap().len(), 2);
        let edges = g["edges"].as_array().unwrap();
        assert_eq!(edges.len(), 1, "{g}");
        assert_eq!(edges[0]["cause"]["type"], "event");
        assert_eq!(edges[0]["cause"]["event_id"], joiner["id"]);
        assert_eq!(edges[0]["from"], absorbed.as_str());
        assert_eq!(edges[0]["into"], live.as_str());
        assert_eq!(
            edges[0]["joined_by"],
            json!({"into": {"kind": "email", "value": "ann@x.org"},
                   "from": {"kind": "visitor_id", "value": "v-1"}})
        );
        let v = identifier(&g, "visitor_id", "v-1");
        assert_eq!(v["first"]["event_id"], phone["id"]);
        assert_eq!(v["came_with"], absorbed.as_str());
        assert_eq!(v["via"], "create");
        let e = identifier(&g, "email", "ann@x.org");
        assert_eq!(e["first"]["event_id"], shop["id"]);
        assert_eq!(e["came_with"], live.as_str());

        app.login().await;
        let (status, html) = app.page(&format!("/profiles/{live}")).await;
        assert_eq!(status, StatusCode::OK);
        let section = graph_section(&html);
        assert!(section.contains("How this profile was joined"));
        let merge_event = format!("href=\"/events/{}\"", str_of(&joiner["id"]));
        let svg = &section[section.find("<svg").expect("an svg")..section.find("</svg>").unwrap()];
        assert!(
            svg.contains(&merge_event),
            "the edge links its event: {svg}"
        );
        let merges = &section[section.find("id=\"graph-merges\"").unwrap()..];
        assert!(merges.contains(&merge_event), "{merges}");
        assert!(merges.contains(&format!("href=\"/profiles/{absorbed}\"")));
        assert!(
            merges.contains("email ann@x.org"),
            "the identifiers that joined them: {merges}"
        );
        let table = &section[section.find("id=\"graph-identifiers\"").unwrap()..];
        assert!(table.contains(&format!("href=\"/events/{}\"", str_of(&phone["id"]))));
        assert!(table.contains(&format!("href=\"/events/{}\"", str_of(&shop["id"]))));
    }
}

backend_tests! {
    #[tokio::test]
    async fn an_unknown_profile_has_no_graph() {
        let app = spawn_app().await;
        for id in ["0190a8e2-0000-7000-8000-000000000000", "not-an-id"] {
            let response = app.api_get(&format!("/api/profiles/{id}/graph")).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
            let body: Value = response.json().await.expect("json");
            assert!(
                body["error"].is_string() && body["code"].is_string(),
                "{body}"
            );
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_conflict_refusal_shows_on_both_profiles_with_the_other_linked() {
        let app = spawn_app().await;
        let source = people(&app).await;
        let first = app
            .send_processed(
                &source.hook,
                &json!({"type": "a", "email": "family@x.org", "user": "x1"}),
            )
            .await;
        let clash = app
            .send_processed(
                &source.hook,
                &json!({"type": "a", "email": "family@x.org", "user": "x2"}),
            )
            .await;
        let owner = str_of(&first["profile_id"]);
        let other = str_of(&clash["profile_id"]);
        assert_ne!(owner, other);
        let event = str_of(&clash["id"]);

        for (here, there, owned_here) in [(&owner, &other, true), (&other, &owner, false)] {
            let g = graph(&app, here).await;
            let refusals = g["refusals"].as_array().unwrap();
            assert_eq!(refusals.len(), 1, "{g}");
            assert_eq!(refusals[0]["other"], there.as_str());
            assert_eq!(refusals[0]["owned_here"], owned_here);
            assert_eq!(refusals[0]["reason"], "external_id_conflict");
            assert_eq!(refusals[0]["event"]["event_id"], event.as_str());
            assert_eq!(
                refusals[0]["arrived_with"],
                json!({"kind": "external_id", "value": "x2"})
            );
        }

        app.login().await;
        let (_, on_owner) = app.page(&format!("/profiles/{owner}")).await;
        let (_, on_other) = app.page(&format!("/profiles/{other}")).await;
        let owner_text = escaped("This profile's email `family@x.org` arrived with external id `x2`, which belongs to another profile; it was not joined");
        let other_text = escaped("external id `x2` (this profile's) arrived with email `family@x.org`, which belongs to another profile; it was not joined");
        for (html, text, there) in [
            (&on_owner, &owner_text, &other),
            (&on_other, &other_text, &owner),
        ] {
            let history = &html[html.find("id=\"history\"").expect("history")..];
            assert!(history.contains(text), "{text} in {history}");
            let section = graph_section(html);
            let kept_apart = &section[section.find("id=\"graph-refusals\"").unwrap()..];
            assert!(kept_apart.contains(text), "{text} in {kept_apart}");
            assert!(kept_apart.contains(&format!("href=\"/profiles/{there}\"")));
            assert!(kept_apart.contains(&format!("href=\"/events/{event}\"")));
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_graph_escapes_a_hostile_visitor_id() {
        let app = spawn_app().await;
        let source = people(&app).await;
        let hostile = "<script>alert('v')</script>";
        let event = app
            .send_processed(&source.hook, &json!({"type": "view", "anon": hostile}))
            .await;
        let id = str_of(&event["profile_id"]);

        app.login().await;
        let (status, html) = app.page(&format!("/profiles/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        let section = graph_section(&html);
        assert!(
            section.contains("<svg class=\"chart profile-graph\""),
            "{section}"
        );
        assert!(!html.contains("<script>alert"), "{section}");
        assert!(section.contains("&lt;script&gt;"), "{section}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_profile_with_a_hundred_merges_answers_quickly_and_draws_a_bounded_picture() {
        let app = spawn_app().await;
        let source = people(&app).await;
        const VISITORS: usize = 100;
        for i in 0..VISITORS {
            app.send_ok(
                &source.hook,
                &json!({"type": "view", "anon": format!("v-{i}")}),
            )
            .await;
        }
        let mut last = Vec::new();
        for i in 0..VISITORS {
            last = app
                .send_ok(
                    &source.hook,
                    &json!({"type": "login", "email": "many@x.org", "anon": format!("v-{i}")}),
                )
                .await;
        }
        let done = app.wait_until_resolved(&last[0]).await;
        let id = str_of(&done["profile_id"]);

        let started = Instant::now();
        let g = graph(&app, &id).await;
        let took = started.elapsed();
        eprintln!("graph of a profile with 99 merges: {took:?}");
        assert!(took < Duration::from_secs(2), "graph took {took:?}");
        // 99 merges: the first login attached to v-0's profile.
        assert_eq!(g["edges"].as_array().unwrap().len(), VISITORS - 1);
        assert_eq!(g["identifiers"].as_array().unwrap().len(), VISITORS + 1);
        assert!(g["identifiers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["first"]["event_id"].is_string()));

        app.login().await;
        let started = Instant::now();
        let (status, html) = app.page(&format!("/profiles/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(2));
        let section = graph_section(&html);
        let svg = &section[section.find("<svg").unwrap()..section.find("</svg>").unwrap()];
        assert!(svg.matches("<g class=\"node\">").count() <= 10, "bounded");
        assert!(svg.contains("more profile(s), listed below"), "{svg}");
        assert!(svg.len() < 30_000, "{} bytes of svg", svg.len());
        let merges = &section[section.find("id=\"graph-merges\"").unwrap()..];
        assert_eq!(merges.matches("<li>").count(), VISITORS - 1, "all listed");
    }
}
