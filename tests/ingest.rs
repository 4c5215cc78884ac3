//! The walking skeleton, told as the users' stories: sources, hooks, the
//! event list and the error log, through the real server over HTTP.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

backend_tests! {
    #[tokio::test]
    async fn the_admin_api_refuses_calls_without_the_admin_token() {
        let app = spawn_app().await;
        let response = app
            .client
            .get(app.url("/api/sources"))
            .send()
            .await
            .unwrap();
        let message = error_of(response, StatusCode::UNAUTHORIZED).await;
        assert!(message.contains("Authorization: Bearer"));
        let response = app
            .client
            .get(app.url("/api/sources"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        error_of(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(
            app.client
                .get(app.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_marketer_creates_a_source_and_gets_its_secret_url_once() {
        let app = spawn_app().await;
        let source = app
            .create_source(json!({"name": "Shop", "api_key": {"header": "X-Shop-Key", "value": "k-123456789"}, "records_path": "items"}))
            .await;
        let token = source.body["token"].as_str().unwrap();
        assert!(token.len() >= 22, "at least 128 bits");
        assert_eq!(source.hook, format!("/hooks/{token}"));
        assert_eq!(source.body["api_key"], json!({"header": "x-shop-key"}));
        assert_eq!(source.body["records_path"], "items");
        assert!(
            !source.body.to_string().contains("k-123456789"),
            "api key never echoed"
        );

        let read = app.api_json(&format!("/api/sources/{}", source.id)).await;
        assert!(
            read.get("token").is_none(),
            "the token is shown only on create/rotate"
        );
        assert!(!read.to_string().contains(token));
        let list = app.api_json("/api/sources").await;
        assert_eq!(list["sources"].as_array().unwrap().len(), 1);
    }
}

backend_tests! {
    #[tokio::test]
    async fn bad_source_settings_are_refused_with_a_reason() {
        let app = spawn_app().await;
        let r = app
            .api_send(Method::POST, "/api/sources", json!({"name": ""}))
            .await;
        assert!(error_of(r, StatusCode::BAD_REQUEST).await.contains("name"));
        let r = app
            .api_send(Method::POST, "/api/sources", json!({"nam": "x"}))
            .await;
        assert!(error_of(r, StatusCode::BAD_REQUEST).await.contains("nam"));
        let r = app
            .api_send(
                Method::POST,
                "/api/sources",
                json!({"name": "x", "api_key": {"header": "bad header", "value": "12345678"}}),
            )
            .await;
        assert!(error_of(r, StatusCode::BAD_REQUEST)
            .await
            .contains("header"));
        let r = app.api_get("/api/sources/not-an-id").await;
        error_of(r, StatusCode::NOT_FOUND).await;
    }
}

backend_tests! {
    #[tokio::test]
    async fn an_app_sends_an_event_and_support_sees_it_in_recent_events() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        let ids = app
            .send_ok(
                &source.hook,
                &json!({"type": "order", "customer": {"email": "a@example.org"}}),
            )
            .await;
        assert_eq!(ids.len(), 1);
        let event = app.processed_event(&ids[0]).await;
        assert_eq!(event["status"], "unmapped");
        assert_eq!(event["source_id"], source.id.as_str());
        assert_eq!(event["payload"]["customer"]["email"], "a@example.org");

        let list = app
            .api_json(&format!("/api/events?source_id={}", source.id))
            .await;
        assert_eq!(list["events"][0]["id"], ids[0].as_str());
        assert_eq!(list["next"], Value::Null);
    }
}

backend_tests! {
    #[tokio::test]
    async fn recent_events_are_newest_first_and_page_with_a_cursor() {
        let app = spawn_app().await;
        let source = app.source_named("Shop").await;
        let mut sent = Vec::new();
        for n in 0..5 {
            sent.extend(app.send_ok(&source.hook, &json!({"n": n})).await);
        }
        let page = app.api_json("/api/events?limit=2").await;
        let got: Vec<&str> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(got, vec![sent[4].as_str(), sent[3].as_str()]);
        let next = page["next"].as_str().unwrap();
        let page = app
            .api_json(&format!("/api/events?limit=2&before={next}"))
            .await;
        assert_eq!(page["events"][0]["id"], sent[2].as_str());
        let r = app.api_get("/api/events?status=bogus").await;
        assert!(error_of(r, StatusCode::BAD_REQUEST)
            .await
            .contains("status"));
    }
}

backend_tests! {
    #[tokio::test]
    async fn form_bodies_text_json_and_get_parameters_become_json() {
        let app = spawn_app().await;
        let source = app.source_named("Forms").await;
        let r = app
            .send_raw(
                &source.hook,
                "application/x-www-form-urlencoded",
                "email=a%40b.org&order__total=12.5",
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let id = ids_of(&r.json().await.unwrap())[0].clone();
        assert_eq!(
            app.event(&id).await["payload"],
            json!({"email": "a@b.org", "order": {"total": "12.5"}})
        );

        let r = app
            .send_raw(&source.hook, "text/plain", r#"{"a": 1}"#)
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);

        let r = app
            .send_raw(
                &source.hook,
                "application/vnd.api+json",
                r#"[{"a": 1}, {"a": 2}]"#,
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(r.json::<Value>().await.unwrap()["accepted"], 2);

        let r = app
            .client
            .get(app.url(&format!(
                "{}?user__email=v%40x.org&_valmi_meta__op=upsert",
                source.hook
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let id = ids_of(&r.json().await.unwrap())[0].clone();
        assert_eq!(
            app.event(&id).await["payload"],
            json!({"user": {"email": "v@x.org"}, "_valmi_meta": {"op": "upsert"}})
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn every_refusal_has_its_status_a_reason_and_an_error_log_entry() {
        let app = spawn_app().await;
        let source = app.source_named("Strict").await;
        let hook = &source.hook;

        let r = app.send_raw(hook, "application/json", "{\"a\":").await;
        assert!(error_of(r, StatusCode::BAD_REQUEST)
            .await
            .contains("not valid JSON"));
        let r = app.send_raw(hook, "application/json", "").await;
        assert!(error_of(r, StatusCode::BAD_REQUEST).await.contains("empty"));
        let r = app
            .send_raw(hook, "application/json", vec![b'"', 0xff, b'"'])
            .await;
        assert!(error_of(r, StatusCode::BAD_REQUEST).await.contains("UTF-8"));
        let deep = "[".repeat(200) + &"]".repeat(200);
        let r = app.send_raw(hook, "application/json", deep).await;
        assert!(error_of(r, StatusCode::BAD_REQUEST)
            .await
            .contains("deeper"));
        let r = app.send_raw(hook, "application/xml", "<a/>").await;
        assert!(error_of(r, StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .await
            .contains("application/json"));
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(6 * 1024 * 1024));
        let r = app.send_raw(hook, "application/json", big).await;
        assert!(error_of(r, StatusCode::PAYLOAD_TOO_LARGE)
            .await
            .contains("limit"));
        let r = app.send(&format!("{hook}x"), &json!({})).await;
        assert!(error_of(r, StatusCode::NOT_FOUND)
            .await
            .contains("unknown webhook URL"));

        let errors = app.errors(&format!("source_id={}", source.id)).await;
        let stages: Vec<&str> = errors
            .iter()
            .map(|e| e["stage"].as_str().unwrap())
            .collect();
        assert_eq!(
            stages,
            vec!["limit", "decode", "decode", "decode", "decode", "decode"]
        );
        let codes: Vec<&str> = errors.iter().map(|e| e["code"].as_str().unwrap()).collect();
        assert!(codes.contains(&"invalid_json") && codes.contains(&"unsupported_content_type"));
        assert_eq!(errors[5]["excerpt"], "{\"a\":");
        let decode_only = app
            .errors(&format!("source_id={}&stage=limit", source.id))
            .await;
        assert_eq!(decode_only.len(), 1);
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_body_limit_is_enforced_on_the_stream_without_content_length() {
        let app = spawn_app().await;
        let source = app.source_named("Chunked").await;
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..7).map(|_| Ok(vec![b' '; 1024 * 1024])).collect();
        let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
        let r = app.send_raw(&source.hook, "application/json", body).await;
        error_of(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_source_with_an_api_key_refuses_requests_without_it() {
        let app = spawn_app().await;
        let source = app
            .create_source(json!({"name": "Keyed", "api_key": {"header": "X-Api-Token", "value": "super-secret-1"}}))
            .await;
        let r = app.send(&source.hook, &json!({"a": 1})).await;
        assert!(error_of(r, StatusCode::UNAUTHORIZED)
            .await
            .contains("x-api-token"));
        let r = app
            .client
            .post(app.url(&source.hook))
            .header("x-api-token", "super-secret-2")
            .json(&json!({"a": 1}))
            .send()
            .await
            .unwrap();
        error_of(r, StatusCode::UNAUTHORIZED).await;
        let r = app
            .client
            .post(app.url(&source.hook))
            .header("x-api-token", "super-secret-1")
            .json(&json!({"a": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let id = ids_of(&r.json().await.unwrap())[0].clone();
        let event = app.event(&id).await;
        assert!(
            !event.to_string().contains("super-secret-1"),
            "the key header is never stored"
        );

        let errors = app
            .errors(&format!("source_id={}&stage=auth", source.id))
            .await;
        let codes: Vec<&str> = errors.iter().map(|e| e["code"].as_str().unwrap()).collect();
        assert_eq!(codes, vec!["bad_api_key", "missing_api_key"]);
        let all = serde_json::to_string(&errors).unwrap();
        assert!(!all.contains("super-secret"), "no secret in the error log");
    }
}

backend_tests! {
    #[tokio::test]
    async fn rotating_a_token_retires_the_old_url() {
        let app = spawn_app().await;
        let source = app.source_named("Rotating").await;
        let r = app
            .api_send(
                Method::POST,
                &format!("/api/sources/{}/rotate", source.id),
                json!({}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let rotated: Value = r.json().await.unwrap();
        let new_hook = rotated["webhook_path"].as_str().unwrap();
        assert_ne!(new_hook, source.hook);
        error_of(
            app.send(&source.hook, &json!({"a": 1})).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(
            app.send(new_hook, &json!({"a": 1})).await.status(),
            StatusCode::ACCEPTED
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_deleted_source_stops_accepting_and_can_be_renamed_before() {
        let app = spawn_app().await;
        let source = app.source_named("Old name").await;
        let r = app
            .api_send(
                Method::PATCH,
                &format!("/api/sources/{}", source.id),
                json!({"name": "New name", "records_path": "data"}),
            )
            .await;
        let updated: Value = r.json().await.unwrap();
        assert_eq!(updated["name"], "New name");
        assert_eq!(updated["records_path"], "data");
        let r = app
            .api_send(
                Method::PATCH,
                &format!("/api/sources/{}", source.id),
                json!({"records_path": null}),
            )
            .await;
        assert_eq!(
            r.json::<Value>().await.unwrap()["records_path"],
            Value::Null
        );

        let r = app
            .client
            .delete(app.url(&format!("/api/sources/{}", source.id)))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        error_of(
            app.send(&source.hook, &json!({"a": 1})).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        error_of(
            app.api_get(&format!("/api/sources/{}", source.id)).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
}

backend_tests! {
    #[tokio::test]
    async fn events_and_sources_survive_a_restart_and_counts_are_kept() {
        let app = spawn_app().await;
        let source = app.source_named("Durable").await;
        let ids = app
            .send_ok(&source.hook, &json!([{"n": 1}, {"n": 2}, {"n": 3}]))
            .await;
        app.processed_event(&ids[2]).await;
        let app = app.restart().await;
        for id in &ids {
            assert_eq!(app.event(id).await["status"], "unmapped");
        }
        let after = app.api_json(&format!("/api/sources/{}", source.id)).await;
        assert_eq!(after["counts"]["received"], 3);
        assert_eq!(after["counts"]["unmapped"], 3);
        assert_eq!(after["counts"]["pending"], 0);
        assert_eq!(
            app.send(&source.hook, &json!({"n": 4})).await.status(),
            StatusCode::ACCEPTED
        );
    }
}

#[tokio::test]
async fn a_second_process_on_the_same_data_dir_fails_fast() {
    let app = spawn_app().await;
    let second = inlet::app::Application::build(config_for(&app.dir)).await;
    let message = second.err().expect("refused").to_string();
    assert!(
        message.contains("in use by another Inlet process"),
        "{message}"
    );
}

backend_tests! {
    #[tokio::test]
    async fn concurrent_senders_share_flushes_and_every_event_is_stored_once() {
        let app = std::sync::Arc::new(spawn_app().await);
        let source = app.source_named("Burst").await;
        let mut tasks = Vec::new();
        for n in 0..64 {
            let app = app.clone();
            let hook = source.hook.clone();
            tasks.push(tokio::spawn(async move {
                app.send_ok(&hook, &json!({"n": n})).await
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.extend(t.await.unwrap());
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 64);
        let page = app
            .api_json(&format!("/api/events?source_id={}&limit=100", source.id))
            .await;
        assert_eq!(page["events"].as_array().unwrap().len(), 64);
    }
}

backend_tests! {
    #[tokio::test]
    async fn every_error_body_carries_a_code_next_to_the_error() {
        let app = spawn_app().await;
        let body_of = |r: reqwest::Response, status: StatusCode| async move {
            assert_eq!(r.status(), status);
            r.json::<Value>().await.expect("json error body")
        };
        // The fallback for a path no route knows.
        let r = app
            .client
            .get(app.url("/no/such/page"))
            .send()
            .await
            .unwrap();
        let body = body_of(r, StatusCode::NOT_FOUND).await;
        assert_eq!(body["code"], "not_found", "{body}");
        assert!(body["error"].as_str().unwrap().contains("no such endpoint"));
        // An unknown hook token, a refused hook body, an admin call without
        // the token.
        let r = app.send("/hooks/no-such-token", &json!({})).await;
        let body = body_of(r, StatusCode::NOT_FOUND).await;
        assert_eq!(body["code"], "not_found", "{body}");
        let source = app.source_named("Codes").await;
        let r = app.send_raw(&source.hook, "application/json", "{").await;
        let body = body_of(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["code"], "invalid_json", "{body}");
        let r = app
            .client
            .get(app.url("/api/sources"))
            .send()
            .await
            .unwrap();
        let body = body_of(r, StatusCode::UNAUTHORIZED).await;
        assert_eq!(body["code"], "unauthorized", "{body}");
    }
}

backend_tests! {
    /// `curl -d '{"email": ...}'` sends JSON as a form: it used to be stored as
    /// `{"<the whole JSON>": ""}` and fail only at mapping time. It is refused
    /// at once, naming the content type to send, and logged (issue 16).
    #[tokio::test]
    async fn json_sent_with_a_form_content_type_is_refused_naming_the_type_to_send() {
        let app = spawn_app().await;
        let source = app.source_named("Curl").await;
        let r = app
            .send_raw(
                &source.hook,
                "application/x-www-form-urlencoded",
                r#"{"email": "ann@example.org"}"#,
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "json_sent_as_form");
        assert!(
            body["error"].as_str().unwrap().contains("application/json"),
            "{body}"
        );
        let errors = app.api_json("/api/errors").await;
        let logged = &errors["errors"][0];
        assert_eq!(logged["code"], "json_sent_as_form", "{errors}");
        assert_eq!(logged["stage"], "decode", "{errors}");
    }
}

/// Refusal body and status of a CSV hook request, asserting the JSON shape.
async fn csv_refusal(app: &TestApp, hook: &str, body: &str) -> (StatusCode, String, String) {
    let r = app.send_raw(hook, "text/csv", body.to_string()).await;
    let status = r.status();
    let body: Value = r.json().await.expect("json error body");
    (
        status,
        body["code"].as_str().expect("code").to_string(),
        body["error"].as_str().expect("error").to_string(),
    )
}

backend_tests! {
    #[tokio::test]
    async fn a_looker_or_spreadsheet_csv_body_becomes_one_event_per_row() {
        let app = spawn_app().await;
        let source = app.source_named("Looker CSV").await;
        let csv = "users.email,users.name,orders.total\na@b.org,Ann,12\n\"c@d.org\",\"Lee, C\",\n";
        for content_type in [
            "text/csv",
            "text/plain; charset=utf-8",
            "text/csv; charset=UTF-8",
        ] {
            let r = app.send_raw(&source.hook, content_type, csv).await;
            assert_eq!(r.status(), StatusCode::ACCEPTED, "{content_type}");
            let ids = ids_of(&r.json().await.unwrap());
            assert_eq!(ids.len(), 2, "{content_type}");
            assert_eq!(
                app.event(&ids[0]).await["payload"],
                json!({"users.email": "a@b.org", "users.name": "Ann", "orders.total": "12"})
            );
            // An empty cell is an empty string: every row has every column.
            assert_eq!(
                app.event(&ids[1]).await["payload"],
                json!({"users.email": "c@d.org", "users.name": "Lee, C", "orders.total": ""})
            );
        }
        // text/plain holding JSON is still JSON.
        let r = app
            .send_raw(
                &source.hook,
                "text/plain; charset=utf-8",
                r#"[{"a": 1}, {"a": 2}]"#,
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(r.json::<Value>().await.unwrap()["accepted"], 2);
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_csv_body_that_cannot_be_read_is_refused_naming_the_row_to_fix() {
        let app = spawn_app().await;
        let source = app.source_named("Bad CSV").await;
        let (status, code, message) = csv_refusal(
            &app,
            &source.hook,
            "email,name\na@b.org,Ann\nc@d.org,Smith, Lee\n",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(code, "csv_ragged_row");
        assert!(
            message.contains("row 2") && message.contains("line 3"),
            "{message}"
        );

        let (status, code, _) = csv_refusal(&app, &source.hook, "a@b.org,Ann\n").await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "csv_missing_header")
        );
        let (status, code, _) = csv_refusal(&app, &source.hook, "email,name\n").await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "csv_no_rows")
        );
        let (status, code, _) = csv_refusal(&app, &source.hook, "email\nPK\u{3}\u{4}\n").await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "not_csv")
        );

        // Every refusal is in the error log with its code, at the records stage.
        let logged: Vec<String> = app
            .errors_at(&source, "records")
            .await
            .iter()
            .map(|e| e["code"].as_str().unwrap().to_string())
            .collect();
        for code in [
            "csv_ragged_row",
            "csv_missing_header",
            "csv_no_rows",
            "not_csv",
        ] {
            assert!(logged.iter().any(|c| c == code), "{code} in {logged:?}");
        }
        assert!(
            app.source_events(&source).await.is_empty(),
            "nothing stored"
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn csv_bodies_are_held_to_the_record_and_body_limits() {
        let app = spawn_app_with(|c| {
            c.max_records = 3;
            c.max_body_bytes = 4096;
        })
        .await;
        let source = app.source_named("CSV limits").await;
        let (status, code, message) = csv_refusal(
            &app,
            &source.hook,
            "email\na@x.org\nb@x.org\nc@x.org\nd@x.org\n",
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, "too_many_records")
        );
        assert!(message.contains("4 in one request"), "{message}");

        let big = format!("email\n{}", "a@example.org\n".repeat(400));
        let (status, code, _) = csv_refusal(&app, &source.hook, &big).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
        );

        // Long column names repeated into every row: refused before the rows are built.
        let app = spawn_app_with(|c| c.max_stored_factor = 2).await;
        let source = app.source_named("CSV budget").await;
        let header: Vec<String> = (0..20)
            .map(|i| format!("a long column name number {i}"))
            .collect();
        let rows = format!("\n{}", vec!["1"; 20].join(",")).repeat(20);
        let (status, code, _) =
            csv_refusal(&app, &source.hook, &format!("{}{rows}", header.join(","))).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, "explosion_too_large")
        );
    }
}
