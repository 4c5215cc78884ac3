//! The mapper, told as the marketer's stories: save a mapping, see events
//! take its shape, fix it and replay, preview before saving, start from a
//! preset or a suggestion — all through the real server over HTTP.

mod common;

use chrono::{DateTime, Utc};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn instant(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp string"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// The `message` of each warning (warnings are `{slot, template, message, suggest}`).
fn messages(warnings: &Value) -> Vec<String> {
    warnings
        .as_array()
        .expect("a list")
        .iter()
        .map(|w| w["message"].as_str().expect("a message").to_string())
        .collect()
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

backend_tests! {
    #[tokio::test]
    async fn each_saved_mapping_is_a_new_version_and_events_carry_the_version_that_mapped_them() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        let v1 = app
            .put_mapping(
                &source,
                json!({"event_name": "{{type}}", "email": "{{email}}"}),
            )
            .await;
        assert_eq!(v1["version"], 1);
        let first = app
            .send_processed(&source.hook, &json!({"type": "a", "email": "a@x.org"}))
            .await;
        assert_eq!(first["mapping_version"], 1);
        assert_eq!(first["name"], "a");

        let v2 = app
            .put_mapping(
                &source,
                json!({"event_name": "Order Placed", "email": "{{email}}"}),
            )
            .await;
        assert_eq!(v2["version"], 2);
        let second = app
            .send_processed(&source.hook, &json!({"type": "a", "email": "a@x.org"}))
            .await;
        assert_eq!(second["mapping_version"], 2);
        assert_eq!(second["name"], "Order Placed");

        let current = app
            .api_json(&format!("/api/sources/{}/mapping", source.id))
            .await;
        assert_eq!(current["version"], 2);
        assert_eq!(current["mapping"]["event_name"], "Order Placed");
        let versions = app
            .api_json(&format!("/api/sources/{}/mapping/versions", source.id))
            .await;
        assert_eq!(versions["current"], 2);
        let listed: Vec<u64> = versions["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect();
        assert_eq!(listed, vec![1, 2]);
        assert_eq!(versions["versions"][0]["mapping"]["event_name"], "{{type}}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_mapping_that_cannot_work_is_refused_with_one_message_per_field() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;

        let missing_name = app
            .try_put_mapping(&source, json!({"email": "{{email}}"}))
            .await;
        assert_eq!(missing_name.status(), StatusCode::BAD_REQUEST);
        let body: Value = missing_name.json().await.unwrap();
        assert!(body["error"].is_string());
        assert!(body["fields"]["event_name"]
            .as_str()
            .unwrap()
            .contains("required"));

        let broken = app
            .try_put_mapping(
                &source,
                json!({"event_name": "{{type", "email": "{{email}}"}),
            )
            .await;
        assert_eq!(broken.status(), StatusCode::BAD_REQUEST);
        let body: Value = broken.json().await.unwrap();
        assert!(
            body["fields"]["event_name"]
                .as_str()
                .unwrap()
                .contains("`{{type` is missing its closing `}}`"),
            "{body}"
        );

        let no_identity = app
            .try_put_mapping(&source, json!({"event_name": "Order Placed"}))
            .await;
        assert_eq!(no_identity.status(), StatusCode::BAD_REQUEST);
        let body: Value = no_identity.json().await.unwrap();
        assert!(body["fields"]["identity"]
            .as_str()
            .unwrap()
            .contains("visitor_id, email or external_id"));

        let unknown_helper = app
            .try_put_mapping(
                &source,
                json!({"event_name": "x", "email": "{{email}}", "properties": {"total": "{{nope total}}"}}),
            )
            .await;
        assert_eq!(unknown_helper.status(), StatusCode::BAD_REQUEST);
        let body: Value = unknown_helper.json().await.unwrap();
        assert!(body["fields"]["properties.total"]
            .as_str()
            .unwrap()
            .contains("there is no helper `nope`"));

        let r = app
            .api_get(&format!("/api/sources/{}/mapping", source.id))
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "nothing was saved");
    }
}

backend_tests! {
    #[tokio::test]
    async fn paths_the_source_never_sent_are_warnings_not_errors() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        app.send_processed(&source.hook, &json!({"type": "a", "email": "a@x.org"}))
            .await;
        let saved = app
            .put_mapping(
                &source,
                json!({"event_name": "{{type}}", "email": "{{emial}}"}),
            )
            .await;
        assert_eq!(saved["version"], 1);
        let warnings = messages(&saved["warnings"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("`emial` has never been seen"));
        assert_eq!(saved["warnings"][0]["slot"], "email");
    }
}

backend_tests! {
    #[tokio::test]
    async fn emails_are_not_html_escaped_and_are_trimmed_and_lowercased() {
        let app = spawn_app().await;
        let source = app
            .mapped_source(
                "Shop",
                json!({"event_name": "{{type}}", "email": "{{email}}", "visitor_id": "{{anon}}"}),
            )
            .await;
        let event = app
            .send_processed(
                &source.hook,
                &json!({"type": "a", "email": "o'brien+x=y&z@example.org"}),
            )
            .await;
        assert_eq!(event["status"], "resolved");
        assert_eq!(event["email"], "o'brien+x=y&z@example.org");
        let profile = app.profile_by_email("o'brien+x=y&z@example.org").await;
        assert_eq!(profile["emails"], json!(["o'brien+x=y&z@example.org"]));

        let event = app
            .send_processed(
                &source.hook,
                &json!({"type": "a", "email": "  Ann@Example.ORG  "}),
            )
            .await;
        assert_eq!(event["email"], "ann@example.org");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_missing_identity_path_is_null_and_never_a_profile_keyed_by_empty_text() {
        let app = spawn_app().await;
        let source = app
            .mapped_source(
                "Shop",
                json!({"event_name": "{{type}}", "email": "{{email}}", "external_id": "{{user}}", "visitor_id": "{{anon}}"}),
            )
            .await;
        let event = app
            .send_processed(&source.hook, &json!({"type": "a", "anon": "v-1"}))
            .await;
        assert_eq!(event["status"], "resolved");
        assert_eq!(event["email"], Value::Null);
        assert_eq!(event["external_id"], Value::Null);
        assert_eq!(event["visitor_id"], "v-1");
        let profile = app.profile_by("visitor_id", "v-1").await;
        assert_eq!(profile["emails"], json!([]));
        assert_eq!(profile["external_ids"], json!([]));

        // An event with no identifier at all joins no profile.
        let event = app
            .send_processed(&source.hook, &json!({"type": "a", "email": "   "}))
            .await;
        assert_eq!(event["email"], Value::Null);
        assert_eq!(event["profile_id"], Value::Null);
        assert_eq!(event["resolution"], "refused: no_identifier");
    }
}

backend_tests! {
    #[tokio::test]
    async fn properties_keep_the_whole_record_typed_values_or_listed_paths() {
        let app = spawn_app().await;
        let record = json!({"type": "a", "email": "a@x.org", "total": 12.5, "customer": {"tier": "vip"}, "items": [{"sku": "A1"}]});

        let all = app
            .mapped_source(
                "All",
                json!({"event_name": "{{type}}", "email": "{{email}}", "properties": "*"}),
            )
            .await;
        let event = app.send_processed(&all.hook, &record).await;
        assert_eq!(event["properties"], record);

        let named = app
            .mapped_source(
                "Named",
                json!({"event_name": "{{type}}", "email": "{{email}}", "properties": {"total": "{{total}}", "label": "{{total}} USD", "customer": "{{customer}}", "missing": "{{nope}}"}}),
            )
            .await;
        let event = app.send_processed(&named.hook, &record).await;
        assert_eq!(
            event["properties"],
            json!({"total": 12.5, "label": "12.5 USD", "customer": {"tier": "vip"}})
        );

        let paths = app
            .mapped_source(
                "Paths",
                json!({"event_name": "{{type}}", "email": "{{email}}", "properties": ["total", "customer.tier", "items.0.sku", "nope"]}),
            )
            .await;
        let event = app.send_processed(&paths.hook, &record).await;
        assert_eq!(
            event["properties"],
            json!({"total": 12.5, "customer.tier": "vip", "items.0.sku": "A1"})
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn headers_name_events_but_secret_headers_are_never_stored() {
        let app = spawn_app().await;
        let source = app
            .create_source(json!({"name": "GitHub", "api_key": {"header": "X-Shop-Key", "value": "shop-key-0123456789"}}))
            .await;
        app.put_mapping(
            &source,
            json!({"event_name": "{{headers.x-github-event}}", "email": "{{email}}"}),
        )
        .await;
        let response = app
            .client
            .post(app.url(&source.hook))
            .header("x-github-event", "push")
            .header("x-shop-key", "shop-key-0123456789")
            .header("authorization", "Bearer auth-secret-0123456789")
            .header("cookie", "session=cookie-secret-0123456789")
            .header("x-hub-signature", "sha1=signature-secret-0123456789")
            .json(&json!({"email": "a@x.org"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let ids = ids_of(&response.json().await.unwrap());
        let event = app.processed_event(&ids[0]).await;
        assert_eq!(event["status"], "resolved");
        assert_eq!(event["name"], "push");
        assert_eq!(event["headers"]["x-github-event"], "push");
        let stored = event.to_string().to_lowercase();
        for secret in [
            "shop-key-0123456789",
            "auth-secret",
            "cookie-secret",
            "signature-secret",
            "x-shop-key",
            "authorization",
            "\"cookie\"",
            "x-hub-signature",
        ] {
            assert!(!stored.contains(secret), "`{secret}` leaked into {stored}");
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn timestamps_read_rfc3339_and_unix_time_and_fall_back_to_received_at_with_a_warning() {
        let app = spawn_app().await;
        let source = app
            .mapped_source(
                "Shop",
                json!({"event_name": "{{type}}", "email": "{{email}}", "timestamp": "{{ts}}"}),
            )
            .await;
        let expected: DateTime<Utc> = "2024-03-01T15:00:00Z".parse().unwrap();
        for ts in [
            json!("2024-03-01T10:00:00-05:00"),
            json!(1709305200),
            json!("1709305200"),
            json!(1709305200000_u64),
        ] {
            let event = app
                .send_processed(
                    &source.hook,
                    &json!({"type": "a", "email": "a@x.org", "ts": ts}),
                )
                .await;
            assert_eq!(event["status"], "resolved");
            assert_eq!(instant(&event["timestamp"]), expected, "ts {ts}");
            assert_eq!(event["warnings"], json!([]), "ts {ts}");
        }

        let event = app
            .send_processed(
                &source.hook,
                &json!({"type": "a", "email": "a@x.org", "ts": "abc"}),
            )
            .await;
        assert_eq!(event["status"], "resolved");
        assert_eq!(instant(&event["timestamp"]), instant(&event["received_at"]));
        let warnings = strings(&event["warnings"]);
        assert!(warnings.iter().any(|w| w.contains("`abc`")), "{warnings:?}");
        let logged = app.errors_at(&source, "map").await;
        assert!(logged
            .iter()
            .any(|e| e["event_id"] == event["id"] && e["message"].as_str().unwrap().contains("abc")));
    }
}

backend_tests! {
    #[tokio::test]
    async fn events_that_arrived_before_any_mapping_are_mapped_when_the_first_one_is_saved() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.extend(
                app.send_ok(
                    &source.hook,
                    &json!({"type": "order", "email": format!("u{n}@x.org")}),
                )
                .await,
            );
        }
        for id in &ids {
            assert_eq!(app.processed_event(id).await["status"], "unmapped");
        }
        let saved = app
            .put_mapping(
                &source,
                json!({"event_name": "{{type}}", "email": "{{email}}"}),
            )
            .await;
        assert_eq!(saved["replay"]["status"], "unmapped");
        assert_eq!(saved["replay"]["total"], 3);

        let view = app.wait_for_replay(&source).await;
        assert_eq!(view["replay"]["done"], 3);
        for id in &ids {
            let event = app.wait_until_resolved(id).await;
            assert_eq!(event["mapping_version"], 1);
            assert_eq!(event["name"], "order");
        }
        let view = app.api_json(&format!("/api/sources/{}", source.id)).await;
        assert_eq!(view["counts"]["resolved"], 3, "{view}");
        assert_eq!(view["counts"]["unmapped"], 0, "{view}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn failed_events_are_replayed_after_the_mapping_is_fixed() {
        let app = spawn_app().await;
        let source = app
            .mapped_source(
                "Shop",
                json!({"event_name": "{{type}}", "email": "{{email}}"}),
            )
            .await;
        let failed = app
            .send_processed(&source.hook, &json!({"email": "a@x.org"}))
            .await;
        assert_eq!(failed["status"], "failed");
        let errors = strings(&failed["errors"]);
        assert!(
            errors[0].contains("event_name rendered empty") && errors[0].contains("`{{type}}`"),
            "{errors:?}"
        );
        let logged = app.errors_at(&source, "map").await;
        assert!(logged.iter().any(|e| e["event_id"] == failed["id"]));

        app.put_mapping(
            &source,
            json!({"event_name": "{{default type \"order\"}}", "email": "{{email}}"}),
        )
        .await;
        // Resolved events can be replayed now (tests/backfill.rs); pending ones never.
        let r = app.replay(&source, "pending").await;
        assert!(error_of(r, StatusCode::BAD_REQUEST)
            .await
            .contains("cannot be replayed"));
        let r = app.replay(&source, "bogus").await;
        error_of(r, StatusCode::BAD_REQUEST).await;

        let r = app.replay(&source, "failed").await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let event = app
            .wait_until_resolved(failed["id"].as_str().unwrap())
            .await;
        assert_eq!(event["mapping_version"], 2);
        assert_eq!(event["name"], "order");
        assert_eq!(event["errors"], json!([]));
        let view = app.wait_for_replay(&source).await;
        assert_eq!(view["replay"]["done"], 1, "{view}");
        assert_eq!(view["counts"]["failed"], 0, "{view}");
        assert_eq!(view["counts"]["resolved"], 1, "{view}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_same_event_id_delivered_twice_is_accepted_twice_and_counted_once() {
        let app = spawn_app().await;
        let source = app
            .mapped_source(
                "Shop",
                json!({"event_name": "{{type}}", "email": "{{email}}", "event_id": "{{id}}"}),
            )
            .await;
        let body = json!({"id": "evt-1", "type": "order", "email": "a@x.org"});
        let first = app.send_processed(&source.hook, &body).await;
        let second = app.send_processed(&source.hook, &body).await;
        assert_eq!(first["status"], "resolved");
        assert_eq!(second["status"], "duplicate");
        assert_eq!(second["event_id"], "evt-1");
        let profile = app.profile_by_email("a@x.org").await;
        assert_eq!(profile["event_count"], 1);
        let view = app.api_json(&format!("/api/sources/{}", source.id)).await;
        assert_eq!(view["counts"]["duplicate"], 1, "{view}");
        assert_eq!(view["counts"]["resolved"], 1, "{view}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_preview_shows_events_and_resolutions_without_storing_anything() {
        let app = spawn_app().await;
        let mapping = json!({"event_name": "{{type}}", "email": "{{email}}", "visitor_id": "{{anon}}", "timestamp": "{{ts}}"});
        let source = app.mapped_source("Shop", mapping.clone()).await;
        let known = app
            .send_processed(
                &source.hook,
                &json!({"type": "seen", "email": "known@x.org", "anon": "v-known"}),
            )
            .await;
        app.send_processed(&source.hook, &json!({"type": "seen", "anon": "v-other"}))
            .await;
        let before = app.source_events(&source).await.len();

        let cases = [
            (json!({"type": "new", "email": "new@x.org"}), "create"),
            (json!({"type": "again", "email": "known@x.org"}), "attach"),
            (
                json!({"type": "both", "email": "known@x.org", "anon": "v-other"}),
                "merge",
            ),
        ];
        for (payload, resolution) in cases {
            let out = app
                .preview(
                    &source,
                    json!({"mapping": mapping, "payload": payload.clone()}),
                )
                .await;
            let results = out["results"].as_array().unwrap();
            assert_eq!(results.len(), 1);
            assert_eq!(results[0]["resolution"], resolution, "{payload}");
            assert_eq!(results[0]["event"]["name"], payload["type"]);
            assert!(results[0]["warnings"].is_array());
        }
        let out = app
            .preview(
                &source,
                json!({"mapping": mapping, "payload": {"type": "x", "email": "null"}}),
            )
            .await;
        let result = &out["results"][0];
        assert!(
            result["resolution"]
                .as_str()
                .unwrap()
                .starts_with("refused: "),
            "{result}"
        );
        assert!(!result["warnings"].as_array().unwrap().is_empty());

        // Nothing was stored: no profile, no event, no merge.
        let r = app.try_profile_by("email", "new@x.org").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.source_events(&source).await.len(), before);
        let other = app.profile_by("visitor_id", "v-other").await;
        assert_ne!(other["id"], known["profile_id"]);

        // Without a payload it runs over the latest samples.
        let out = app.preview(&source, json!({"mapping": mapping})).await;
        let names: Vec<&Value> = out["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["event"]["name"])
            .collect();
        assert_eq!(names, vec!["seen", "seen"]);
        assert_eq!(app.source_events(&source).await.len(), before);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_source_started_from_the_stripe_preset_maps_stripe_events() {
        let app = spawn_app().await;
        let presets = app.api_json("/api/presets").await;
        let names: Vec<&str> = presets["presets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in [
            "looker",
            "segment",
            "stripe",
            "shopify_order",
            "hubspot",
            "github_push",
        ] {
            assert!(names.contains(&name), "{names:?}");
        }

        let r = app
            .api_send(Method::POST, "/api/sources", json!({"preset": "strype"}))
            .await;
        let message = error_of(r, StatusCode::BAD_REQUEST).await;
        assert!(message.contains("strype") && message.contains("stripe"));

        // The preset verifies Stripe's signatures (issue 18; tests/signatures.rs
        // sends signed ones): this test is about the mapping, so it opts out.
        let source = app
            .create_source(json!({"preset": "stripe", "verify": null}))
            .await;
        assert_eq!(source.body["mapping_version"], 1);
        let ids = app
            .send_ok(&source.hook, &fixture("presets/stripe.json"))
            .await;
        assert_eq!(ids.len(), 2);
        let paid = app.processed_event(&ids[0]).await;
        assert_eq!(paid["status"], "resolved", "{paid}");
        assert_eq!(paid["mapping_version"], 1);
        assert_eq!(paid["name"], "payment_intent.succeeded");
        // The customer is its own kind since issue 17, not the external id.
        assert!(paid["external_id"].is_null(), "{paid}");
        assert_eq!(
            paid["identifiers"]["stripe_customer_id"],
            "cus_PfB9xYzQ12AbCd"
        );
        let payer = app.profile(paid["profile_id"].as_str().unwrap()).await;
        assert_eq!(
            payer["identifiers"]["stripe_customer_id"],
            json!(["cus_PfB9xYzQ12AbCd"])
        );
        assert_eq!(paid["email"], "jenny.rosen@example.com");
        assert_eq!(paid["event_id"], "evt_3OqK2bLkdIwHu7ix1Yx9Wk2T");
        assert_eq!(paid["properties"]["amount"], 2000);
        assert_eq!(
            instant(&paid["timestamp"]),
            "2024-03-01T15:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let invoice = app.processed_event(&ids[1]).await;
        assert_eq!(invoice["name"], "invoice.paid");
        assert_eq!(invoice["profile_id"], paid["profile_id"]);

        // A preset can also be saved onto an existing source as a new version.
        let plain = app.source_named("Payments").await;
        let saved = app.put_mapping(&plain, json!({"preset": "stripe"})).await;
        assert_eq!(saved["version"], 1);
        assert_eq!(saved["preset"], "stripe");
        let r = app.try_put_mapping(&plain, json!({"preset": "nope"})).await;
        assert!(error_of(r, StatusCode::BAD_REQUEST)
            .await
            .contains("known presets"));
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_learned_schema_suggests_a_mapping_that_maps_the_events() {
        let app = spawn_app().await;
        let source = app.source_named("Shop orders").await;
        let mut ids = Vec::new();
        for n in 0..3 {
            let body = json!({"type": "order_created", "id": format!("o-{n}"), "customer": {"email": "ann@example.org", "id": 42}, "total": 10 + n});
            ids.extend(app.send_ok(&source.hook, &body).await);
        }
        for id in &ids {
            app.processed_event(id).await;
        }

        let schema = app
            .api_json(&format!("/api/sources/{}/schema", source.id))
            .await;
        assert_eq!(schema["samples"], 3);
        let email = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == "customer.email")
            .expect("customer.email is learned");
        assert_eq!(email["formats"], json!(["email"]));
        assert_eq!(email["seen"], 3);

        let samples = app
            .api_json(&format!("/api/sources/{}/samples", source.id))
            .await;
        let samples = samples["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0]["record"]["id"], "o-2", "newest first");

        let suggestion = app
            .api_json(&format!("/api/sources/{}/mapping/suggest", source.id))
            .await;
        assert_eq!(suggestion["mapping"]["email"], "{{customer.email}}");
        assert!(!suggestion["reasons"]["email"]
            .as_str()
            .unwrap_or_default()
            .is_empty());

        let saved = app
            .put_mapping(&source, suggestion["mapping"].clone())
            .await;
        assert_eq!(saved["version"], 1);
        assert_eq!(saved["warnings"], json!([]));
        for id in &ids {
            let event = app.wait_until_resolved(id).await;
            assert_eq!(event["email"], "ann@example.org");
            assert_eq!(event["name"], "order_created");
        }
        let profile = app.profile_by_email("ann@example.org").await;
        assert_eq!(profile["event_count"], 3);
    }
}

backend_tests! {
    #[tokio::test]
    async fn looker_rows_become_one_event_each_with_the_schedule_in_the_envelope() {
        let app = spawn_app().await;
        let source = app
            .create_source(json!({"name": "Looker", "records_path": "attachment.data"}))
            .await;
        app.put_mapping(
            &source,
            json!({"event_name": "{{envelope.scheduled_plan.title}}", "email": "{{Contact}}", "properties": "*"}),
        )
        .await;
        let ids = app
            .send_ok(&source.hook, &fixture("looker_inline.json"))
            .await;
        assert_eq!(ids.len(), 2);
        let first = app.processed_event(&ids[0]).await;
        assert_eq!(first["status"], "resolved");
        assert_eq!(first["name"], "Sales — Year to Date");
        assert_eq!(first["email"], "ann@example.com");
        assert_eq!(first["properties"]["Revenue"], 3828101);
        assert_eq!(first["envelope"]["scheduled_plan"]["scheduled_plan_id"], 37);
        let second = app.processed_event(&ids[1]).await;
        assert_eq!(second["email"], "bob@example.com");

        let ids = app.send_ok(&source.hook, &fixture("looker_csv.json")).await;
        assert_eq!(ids.len(), 3);
        let rows: Vec<Value> = {
            let mut rows = Vec::new();
            for id in &ids {
                rows.push(app.processed_event(id).await);
            }
            rows
        };
        assert_eq!(rows[0]["payload"]["Division"], "Brick + Mortar");
        assert_eq!(
            rows[0]["payload"]["Note"],
            "Stores, outlets and \"pop-ups\""
        );
        assert_eq!(rows[0]["payload"]["Revenue"], "3828101", "CSV stays text");
        assert_eq!(rows[1]["payload"]["Note"], "first line\nsecond line");
        assert_eq!(rows[2]["payload"]["Division"], "Wholesale");
        assert_eq!(rows[2]["name"], "Sales — Year to Date");
    }
}

backend_tests! {
    #[tokio::test]
    async fn too_many_records_in_one_request_are_refused_with_413() {
        let app = spawn_app_with(|config| config.max_records = 2).await;
        let source = app.source_named("Batch").await;
        let r = app
            .send(&source.hook, &json!([{"n": 1}, {"n": 2}, {"n": 3}]))
            .await;
        let message = error_of(r, StatusCode::PAYLOAD_TOO_LARGE).await;
        assert!(message.contains('3') && message.contains('2'), "{message}");
        let logged = app.errors_at(&source, "records").await;
        assert_eq!(logged.len(), 1);
        assert_eq!(logged[0]["code"], "too_many_records");
        assert!(app.source_events(&source).await.is_empty());

        let ids = app
            .send_ok(&source.hook, &json!([{"n": 1}, {"n": 2}]))
            .await;
        assert_eq!(ids.len(), 2);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_pdf_attachment_is_kept_but_fails_as_not_mappable() {
        let app = spawn_app().await;
        let source = app
            .create_source(json!({"name": "Looker", "records_path": "attachment.data"}))
            .await;
        app.put_mapping(
            &source,
            json!({"event_name": "{{envelope.scheduled_plan.title}}", "email": "{{Contact}}"}),
        )
        .await;
        let ids = app.send_ok(&source.hook, &fixture("looker_pdf.json")).await;
        assert_eq!(ids.len(), 1);
        let event = app.processed_event(&ids[0]).await;
        assert_eq!(event["status"], "failed");
        let reason = event["not_mappable"].as_str().expect("not_mappable reason");
        assert!(reason.contains("pdf"), "{reason}");
        assert_eq!(strings(&event["errors"]), vec![reason.to_string()]);
        let logged = app.errors_at(&source, "records").await;
        assert!(logged
            .iter()
            .any(|e| e["code"] == "not_mappable" && e["event_id"] == event["id"]));
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_new_field_after_twenty_events_of_one_shape_is_logged_as_schema_drift() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        let batch: Vec<Value> = (0..20)
            .map(|n| json!({"type": "order", "total": n}))
            .collect();
        let ids = app.send_ok(&source.hook, &Value::Array(batch)).await;
        app.processed_event(ids.last().unwrap()).await;
        assert!(app.errors_at(&source, "sniff").await.is_empty());

        let event = app
            .send_processed(
                &source.hook,
                &json!({"type": "order", "total": 1, "coupon": "SPRING"}),
            )
            .await;
        let drift = app.errors_at(&source, "sniff").await;
        assert_eq!(drift.len(), 1, "{drift:?}");
        assert_eq!(drift[0]["level"], "warning");
        assert_eq!(drift[0]["event_id"], event["id"]);
        assert!(drift[0]["message"].as_str().unwrap().contains("`coupon`"));
    }
}

backend_tests! {
    #[tokio::test]
    async fn reserved_names_are_not_reported_as_paths_never_seen() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        app.send_processed(
            &source.hook,
            &json!({"type": "a", "email": "a@x.org", "headers": "the record's own field", "users.email": "b@x.org"}),
        )
        .await;
        let saved = app
            .put_mapping(
                &source,
                json!({
                    "event_name": "{{headers.x-github-event}}",
                    "email": "{{[users.email]}}",
                    "external_id": "{{record.email}}",
                    "properties": {"own": "{{record.headers}}", "plan": "{{envelope.scheduled_plan.title}}", "kind": "{{default type \"order\"}}"}
                }),
            )
            .await;
        // The one sample was sent without the header, so the event name is
        // (rightly) warned about as empty; no path is reported as never seen.
        let slots: Vec<&Value> = saved["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| &w["slot"])
            .collect();
        assert_eq!(slots, vec![&json!("event_name")], "{}", saved["warnings"]);
        let response = app
            .client
            .post(app.url(&source.hook))
            .header("X-GitHub-Event", "push")
            .json(&json!({"type": "a", "email": "a@x.org", "headers": "own", "users.email": "b@x.org"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let ids = ids_of(&response.json().await.unwrap());
        let event = app.processed_event(&ids[0]).await;
        assert_eq!(event["name"], "push", "{event}");
        assert_eq!(event["email"], "b@x.org", "{event}");
        assert_eq!(event["external_id"], "a@x.org");
        assert_eq!(event["properties"]["own"], "own");
        assert_eq!(event["properties"]["kind"], "a");
    }
}

/// A Look sent as JSON: Looker names every column `view.field`.
fn looker_rows() -> Value {
    json!([
        {"users.email": "Ann@Example.com", "users.id": 7, "orders.id": 101, "orders.total": 30},
        {"users.email": "Ann@Example.com", "users.id": 7, "orders.id": 102, "orders.total": 12},
        {"users.email": "bob@example.com", "users.id": 8, "orders.id": 103, "orders.total": 5}
    ])
}

/// Sends the Look to a new source and waits until the processor has seen it.
async fn looker_source(app: &TestApp) -> TestSource {
    let source = app.source_named("Looker orders").await;
    for id in app.send_ok(&source.hook, &looker_rows()).await {
        app.processed_event(&id).await;
    }
    source
}

backend_tests! {
    #[tokio::test]
    async fn looker_dotted_keys_map_from_schema_to_suggestion_to_a_resolved_profile() {
        let app = spawn_app().await;
        let source = looker_source(&app).await;

        let schema = app
            .api_json(&format!("/api/sources/{}/schema", source.id))
            .await;
        let email = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["template"] == "{{[users.email]}}")
            .unwrap_or_else(|| panic!("the schema shows {{{{[users.email]}}}}: {schema}"));
        assert_eq!(email["path"], "[users.email]");
        assert_eq!(email["formats"], json!(["email"]));

        let suggestion = app
            .api_json(&format!("/api/sources/{}/mapping/suggest", source.id))
            .await;
        let mapping = &suggestion["mapping"];
        assert_eq!(mapping["email"], "{{[users.email]}}", "{suggestion}");
        assert_ne!(
            mapping["event_id"], "{{[users.id]}}",
            "a per-user id is no event id: {suggestion}"
        );
        assert_eq!(mapping["event_id"], "{{[orders.id]}}", "{suggestion}");

        let preview = app.preview(&source, json!({"mapping": mapping})).await;
        assert_eq!(preview["warnings"], json!([]), "{preview}");
        let results = preview["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        for r in results {
            assert!(
                !r["resolution"].as_str().unwrap().starts_with("refused"),
                "{r}"
            );
            assert!(r["event"]["email"]
                .as_str()
                .unwrap()
                .ends_with("@example.com"));
        }

        let saved = app.put_mapping(&source, mapping.clone()).await;
        assert_eq!(saved["warnings"], json!([]), "{saved}");
        app.wait_for_replay(&source).await;
        let ann = app.profile_by_email("ann@example.com").await;
        assert_eq!(ann["event_count"], 2, "{ann}");
        let bob = app.profile_by_email("bob@example.com").await;
        assert_eq!(bob["event_count"], 1, "{bob}");

        // A later row of the same user is a new event, not a duplicate.
        let later = app
            .send_processed(
                &source.hook,
                &json!({"users.email": "ann@example.com", "users.id": 7, "orders.id": 104}),
            )
            .await;
        assert_eq!(later["status"], "resolved", "{later}");
        assert_eq!(
            app.profile_by_email("ann@example.com").await["event_count"],
            3
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_dotted_path_that_reads_nothing_is_a_warning_naming_the_template_to_use() {
        let app = spawn_app().await;
        let source = looker_source(&app).await;
        let mapping = json!({"event_name": "Order", "email": "{{users.email}}"});
        let want = json!({
            "slot": "email",
            "template": "{{users.email}}",
            "message": "no sample has a value for {{users.email}}; the field seen is `users.email`: use {{[users.email]}}",
            "suggest": "{{[users.email]}}"
        });

        let preview = app.preview(&source, json!({"mapping": mapping})).await;
        assert_eq!(preview["warnings"], json!([want]), "{preview}");

        // With a payload given, the warning is about that payload's records.
        let given = app
            .preview(
                &source,
                json!({"mapping": mapping, "payload": {"users.email": "c@x.org"}}),
            )
            .await;
        assert_eq!(given["warnings"], json!([want]), "{given}");

        let response = app
            .api_send(
                Method::PUT,
                &format!("/api/sources/{}/mapping", source.id),
                mapping.clone(),
            )
            .await;
        assert!(response.status().is_success(), "{}", response.status());
        let saved: Value = response.json().await.unwrap();
        assert_eq!(saved["version"], 1);
        assert_eq!(saved["warnings"], json!([want]), "{saved}");

        // The suggested fix reads the key, and the warning goes away.
        let fixed = json!({"event_name": "Order", "email": want["suggest"]});
        let preview = app.preview(&source, json!({"mapping": fixed})).await;
        assert_eq!(preview["warnings"], json!([]), "{preview}");
    }
}
