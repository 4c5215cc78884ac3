//! Identity values are exact (issue 14): hostile or careless identifiers and
//! timestamps, sent through the real server, never merge two people, never
//! hide in a look-alike profile, and never pin a profile's traits.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn mapping() -> Value {
    json!({
        "event_name": "{{type}}",
        "email": "{{email}}",
        "external_id": "{{user}}",
        "traits": {"plan": "{{plan}}"},
        "timestamp": "{{ts}}"
    })
}

/// Sends a body as written (so numbers keep the text the test chose).
async fn send_text(app: &TestApp, source: &TestSource, body: &str) -> Value {
    let response = app
        .send_raw(&source.hook, "application/json", body.to_owned())
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let ids = ids_of(&response.json().await.expect("json"));
    assert_eq!(ids.len(), 1);
    app.processed_event(&ids[0]).await
}

backend_tests! {
    #[tokio::test]
    async fn external_ids_beyond_64_bits_stay_two_customers() {
        let app = spawn_app().await;
        let source = app.mapped_source("Crm", mapping()).await;
        let first = send_text(
            &app,
            &source,
            r#"{"type": "signup", "user": 123456789012345678901, "plan": "a"}"#,
        )
        .await;
        let second = send_text(
            &app,
            &source,
            r#"{"type": "signup", "user": 123456789012345678902, "plan": "b"}"#,
        )
        .await;
        assert_eq!(first["resolution"], "create", "{first}");
        assert_eq!(second["resolution"], "create", "{second}");
        assert_ne!(first["profile_id"], second["profile_id"]);
        let a = app.profile_by("external_id", "123456789012345678901").await;
        let b = app.profile_by("external_id", "123456789012345678902").await;
        assert_eq!(a["external_ids"], json!(["123456789012345678901"]));
        assert_eq!(b["external_ids"], json!(["123456789012345678902"]));
        assert_eq!(a["id"], first["profile_id"]);
        assert_eq!(b["id"], second["profile_id"]);
        // The stored event shows the number exactly as sent, not a rounded float.
        let shown = app.event(first["id"].as_str().unwrap()).await.to_string();
        assert!(shown.contains("123456789012345678901"), "{shown}");
        assert!(!shown.contains("123456789012345680000"), "{shown}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_kelvin_sign_email_stays_apart_from_the_ascii_one() {
        let app = spawn_app().await;
        let source = app.mapped_source("Web", mapping()).await;
        let kim = app
            .send_processed(
                &source.hook,
                &json!({"type": "signup", "email": "kim@example.com", "plan": "kim"}),
            )
            .await;
        let kelvin = app
            .send_processed(
                &source.hook,
                &json!({"type": "signup", "email": "\u{212A}im@example.com", "plan": "other"}),
            )
            .await;
        assert_eq!(kim["resolution"], "create");
        assert_eq!(kelvin["resolution"], "create", "{kelvin}");
        assert_ne!(kim["profile_id"], kelvin["profile_id"]);
        let profile = app.profile_by_email("kim@example.com").await;
        assert_eq!(profile["emails"], json!(["kim@example.com"]));
        assert_eq!(profile["traits"]["plan"], "kim");
        let other = app.profile_by_email("\u{212A}im@example.com").await;
        assert_eq!(other["id"], kelvin["profile_id"]);
        assert_eq!(other["emails"], json!(["\u{212A}im@example.com"]));
    }
}

backend_tests! {
    #[tokio::test]
    async fn invisible_characters_are_refused_with_the_reason_on_the_event() {
        let app = spawn_app().await;
        let source = app.mapped_source("Web", mapping()).await;
        app.send_processed(
            &source.hook,
            &json!({"type": "signup", "email": "kim@example.com"}),
        )
        .await;
        for (email, code) in [
            ("kim\u{200B}@example.com", "invisible_character"),
            ("\u{FEFF}kim@example.com", "invisible_character"),
            ("kim@exa\u{202E}moc.elpm", "invisible_character"),
            ("kim@example.com\u{00A0}", "unusual_space"),
        ] {
            let event = app
                .send_processed(&source.hook, &json!({"type": "signup", "email": email}))
                .await;
            assert_eq!(event["resolution"], format!("refused: {code}"), "{event}");
            assert_eq!(event["profile_id"], Value::Null, "{event}");
            let warnings = event["warnings"].to_string();
            assert!(warnings.contains(code), "{warnings}");
            let logged = app.errors_at(&source, "identity").await;
            assert!(
                logged
                    .iter()
                    .any(|e| e["code"] == code && e["event_id"] == event["id"]),
                "{logged:?}"
            );
        }
        // The refused look-alike made no second profile and joined none.
        let profile = app.profile_by_email("kim@example.com").await;
        assert_eq!(profile["event_count"], 1);
        assert_eq!(
            app.try_profile_by("email", "kim\u{200B}@example.com")
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn an_event_from_the_year_4000_gets_its_arrival_time_and_cannot_pin_traits() {
        let app = spawn_app().await;
        let source = app.mapped_source("Web", mapping()).await;
        let before = chrono::Utc::now();
        let future = app
            .send_processed(
                &source.hook,
                &json!({"type": "plan", "email": "ann@example.org", "plan": "pinned",
                        "ts": "4000-01-01T00:00:00Z"}),
            )
            .await;
        let after = chrono::Utc::now();
        let at: chrono::DateTime<chrono::Utc> = future["timestamp"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("a timestamp in {future}"));
        assert!(before <= at && at <= after, "{at} not the arrival time");
        let warnings = future["warnings"].to_string();
        assert!(warnings.contains("4000-01-01"), "{warnings}");
        let logged = app.errors_at(&source, "map").await;
        assert!(
            logged.iter().any(|e| e["code"] == "timestamp_in_future"
                && e["level"] == "warning"
                && e["event_id"] == future["id"]),
            "{logged:?}"
        );

        let later = app
            .send_processed(
                &source.hook,
                &json!({"type": "plan", "email": "ann@example.org", "plan": "pro",
                        "ts": chrono::Utc::now().to_rfc3339()}),
            )
            .await;
        assert_eq!(later["profile_id"], future["profile_id"]);
        assert!(
            !later["warnings"].to_string().contains("timestamp"),
            "{later}"
        );
        let profile = app.profile_by_email("ann@example.org").await;
        assert_eq!(profile["traits"]["plan"], "pro", "{profile}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn absurd_epoch_numbers_fall_back_without_crashing() {
        let app = spawn_app().await;
        let source = app.mapped_source("Web", mapping()).await;
        for ts in [
            "1e400",
            "-1e400",
            "99999999999999999999999999",
            "-99999999999",
            "64060588800",
        ] {
            let body = format!(r#"{{"type": "t", "email": "a@example.org", "ts": {ts}}}"#);
            let event = send_text(&app, &source, &body).await;
            assert_eq!(event["status"], "resolved", "{ts}: {event}");
        }
        assert_eq!(app.api_get("/healthz").await.status(), StatusCode::OK);
    }
}
