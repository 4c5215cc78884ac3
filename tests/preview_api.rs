//! Preview, told as a marketer's stories: pick which events to run (or
//! paste one), and read template mistakes as help, through the real server
//! over HTTP, in the API and on the source page alike.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn mapping() -> Value {
    json!({"event_name": "{{type}}", "email": "{{email}}"})
}

/// A source with seven events `e0`..`e6` (`type` names them); their ids in order.
async fn seven_events(app: &TestApp) -> (TestSource, Vec<String>) {
    let source = app.source_named("Shop").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let body = json!({"type": format!("e{i}"), "email": format!("p{i}@example.org")});
        ids.extend(app.send_ok(&source.hook, &body).await);
    }
    (source, ids)
}

fn names(preview: &Value) -> Vec<String> {
    preview["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["event"]["name"].as_str().expect("a name").to_string())
        .collect()
}

async fn try_preview(app: &TestApp, source: &TestSource, body: Value) -> (StatusCode, Value) {
    let r = app
        .api_send(
            Method::POST,
            &format!("/api/sources/{}/mapping/preview", source.id),
            body,
        )
        .await;
    (r.status(), r.json().await.expect("json"))
}

backend_tests! {
    #[tokio::test]
    async fn a_preview_runs_the_events_picked_in_the_order_given() {
        let app = spawn_app().await;
        let (source, ids) = seven_events(&app).await;
        let latest = app.preview(&source, json!({"mapping": mapping()})).await;
        assert_eq!(names(&latest), ["e6", "e5", "e4", "e3", "e2"]);
        // The oldest two, which the latest five leave out.
        let picked = app
            .preview(
                &source,
                json!({"mapping": mapping(), "samples": [ids[0], ids[1]]}),
            )
            .await;
        assert_eq!(names(&picked), ["e0", "e1"]);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_bad_or_foreign_sample_id_is_refused_naming_it() {
        let app = spawn_app().await;
        let (source, ids) = seven_events(&app).await;
        let (status, body) = try_preview(
            &app,
            &source,
            json!({"mapping": mapping(), "samples": ["not-an-id"]}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("`not-an-id`"),
            "{body}"
        );

        let other = app.source_named("Other").await;
        let foreign = app.send_ok(&other.hook, &json!({"type": "x"})).await;
        for id in [
            foreign[0].clone(),
            "0190b7c2-7a6e-7c4e-9f3a-2d6f1c0e5b11".to_string(),
        ] {
            let (status, body) = try_preview(
                &app,
                &source,
                json!({"mapping": mapping(), "samples": [ids[0], id]}),
            )
            .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
            assert!(body["error"].as_str().unwrap().contains(&id), "{body}");
            assert_eq!(body["code"], "not_found");
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_pasted_payload_is_read_like_a_hook_body() {
        let app = spawn_app().await;
        let source = app.source_named("Paste").await;
        let csv = "type,email\nsignup,a@example.org\nlogin,b@example.org\n";
        let pasted = app
            .preview(
                &source,
                json!({"mapping": mapping(), "payload": csv, "content_type": "text/csv"}),
            )
            .await;
        assert_eq!(names(&pasted), ["signup", "login"]);
        assert_eq!(pasted["results"][0]["event"]["email"], "a@example.org");
        // Text without a content type is text/plain: JSON when it starts like JSON.
        let text = app
            .preview(
                &source,
                json!({"mapping": mapping(), "payload": "[{\"type\": \"t\", \"email\": \"c@example.org\"}]"}),
            )
            .await;
        assert_eq!(names(&text), ["t"]);
        // A JSON payload is still the body itself.
        let object = app
            .preview(
                &source,
                json!({"mapping": mapping(), "payload": {"type": "o", "email": "d@x.org"}}),
            )
            .await;
        assert_eq!(names(&object), ["o"]);

        let (status, body) = try_preview(
            &app,
            &source,
            json!({"mapping": mapping(), "payload": "type,email\nx\n", "content_type": "text/csv"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["code"], "csv_ragged_row");
        assert!(
            body["fields"]["payload"]
                .as_str()
                .unwrap()
                .contains("row 1"),
            "{body}"
        );
        let (status, _) = try_preview(
            &app,
            &source,
            json!({"mapping": mapping(), "payload": {"a": 1}, "content_type": "text/csv"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            app.source_events(&source).await.is_empty(),
            "nothing stored"
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn template_mistakes_read_like_help_in_save_and_preview() {
        let app = spawn_app().await;
        let (source, _) = seven_events(&app).await;
        let broken = json!({"event_name": "{{type}}", "email": "{{customer.email"});
        let (status, body) = try_preview(&app, &source, json!({"mapping": broken})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body["fields"]["email"],
            "In `email`, line 1: `{{customer.email` is missing its closing `}}`"
        );
        let saved = app.try_put_mapping(&source, broken).await;
        assert_eq!(saved.status(), StatusCode::BAD_REQUEST);
        let saved: Value = saved.json().await.unwrap();
        assert_eq!(saved["fields"]["email"], body["fields"]["email"]);

        let typo = json!({"event_name": "{{type}}", "email": "{{lowercas email}}"});
        let (_, body) = try_preview(&app, &source, json!({"mapping": typo})).await;
        let message = body["fields"]["email"].as_str().unwrap();
        assert!(
            message
                .contains("`{{lowercas email}}`: there is no helper `lowercas`; did you mean `lower`?"),
            "{message}"
        );
        let unclosed = json!({"event_name": "{{#if type}}{{type}}", "email": "{{email}}"});
        let (_, body) = try_preview(&app, &source, json!({"mapping": unclosed})).await;
        assert!(
            body["fields"]["event_name"]
                .as_str()
                .unwrap()
                .contains("`{{#if type}}` is never closed with `{{/if}}`"),
            "{body}"
        );
        let stray = json!({"event_name": "x", "email": "{customer.email}}"});
        let (status, body) = try_preview(&app, &source, json!({"mapping": stray})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["fields"]["email"]
                .as_str()
                .unwrap()
                .contains("a stray `}}`"),
            "{body}"
        );
    }
}

/// The editor's fields with `email` as typed, plus `extra` fields.
fn form<'a>(
    csrf: &'a str,
    email: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("csrf", csrf),
        ("event_name", "{{type}}"),
        ("email", email),
        ("properties", ""),
        ("traits", ""),
    ];
    fields.extend_from_slice(extra);
    fields
}

backend_tests! {
    #[tokio::test]
    async fn the_source_page_previews_ticked_events_or_a_pasted_payload() {
        let app = spawn_app().await;
        let (source, ids) = seven_events(&app).await;
        app.login().await;
        let path = format!("/sources/{}", source.id);
        let (_, page) = app.page(&path).await;
        assert!(page.contains("id=\"sample-picker\""));
        let oldest_box = format!("name=\"sample:{}\"", ids[0]);
        assert!(page.contains(&oldest_box), "a checkbox per recent event");
        assert!(page.contains("name=\"paste\""), "a paste box");

        let csrf = csrf_in(&page).expect("csrf");
        let tick = format!("sample:{}", ids[0]);
        let r = app
            .post_form(
                &format!("{path}/mapping/preview"),
                &form(&csrf, "{{email}}", &[(tick.as_str(), "1")]),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        let preview = &html[html.find("id=\"preview\"").expect("the preview")..];
        assert_eq!(
            preview.matches("class=\"result\"").count(),
            1,
            "only the ticked one"
        );
        assert!(preview.contains("class=\"mapped-name\">e0<"));
        assert!(
            html.contains(&format!("{oldest_box} value=\"1\" checked")),
            "kept ticked"
        );

        let csv = "type,email\npasted,z@example.org\n";
        let r = app
            .post_form(
                &format!("{path}/mapping/preview"),
                &form(
                    &csrf,
                    "{{email}}",
                    &[("paste", csv), ("paste_type", "text/csv")],
                ),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert!(
            html.contains("class=\"mapped-name\">pasted<"),
            "the pasted row"
        );
        assert!(html.contains("z@example.org"));

        // The template message is the API's, on the page.
        let r = app
            .post_form(
                &format!("{path}/mapping/preview"),
                &form(&csrf, "{{customer.email", &[]),
            )
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let html = r.text().await.unwrap();
        assert!(html.contains("is missing its closing"), "{html}");
        assert!(!html.contains("expected"), "no parser token list");
    }
}
