//! Erasure is complete: after a profile is erased, none of its identifiers
//! or personal fields is left in any file of the data dir (raw bytes, in
//! every escaped form), while other people's data stays served, through a
//! restart. Through the real server over HTTP.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const EMAIL: &str = "erase.me-4711@example.org";
const EXTERNAL: &str = "cust-erase-99173";
const VISITOR: &str = "visitor-erase-5521";
const NAME: &str = "Annelise Q. Forgetme";
const OTHER_EMAIL: &str = "keep.me@example.org";

fn mapping() -> Value {
    json!({
        "event_name": "{{type}}",
        "visitor_id": "{{anon}}",
        "email": "{{email}}",
        "external_id": "{{user}}",
        "traits": {"name": "{{name}}", "plan": "{{plan}}"}
    })
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Each value in the forms it can be stored in: as sent, in any ASCII
/// case, JSON-escaped and form-encoded.
fn forms(values: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for v in values {
        let json = serde_json::to_string(v).expect("json");
        let form: String = url_encode(v);
        for f in [v.to_string(), json[1..json.len() - 1].to_string(), form] {
            out.push((v.to_string(), f.to_ascii_lowercase().into_bytes()));
        }
    }
    out
}

fn url_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The files (and the value) where any form of any value is found.
fn leaks(dir: &Path, values: &[&str], skip: impl Fn(&Path) -> bool) -> Vec<String> {
    let needles = forms(values);
    let mut found = Vec::new();
    for path in files(dir) {
        if skip(&path) {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let lower = bytes.to_ascii_lowercase();
        for (value, needle) in &needles {
            if lower.windows(needle.len()).any(|w| w == needle.as_slice()) {
                found.push(format!("{value} in {}", path.display()));
            }
        }
    }
    found
}

fn in_sled(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "db")
}

#[tokio::test]
async fn an_erased_profile_leaves_no_trace_in_any_file_of_the_data_dir() {
    let app = spawn_app().await;
    let source = app.mapped_source("Shop", mapping()).await;
    let person = json!({
        "type": "order", "anon": VISITOR, "email": "Erase.Me-4711@Example.org",
        "user": EXTERNAL, "name": NAME, "plan": "gold"
    });
    let first = app.send_processed(&source.hook, &person).await;
    assert_eq!(first["status"], "resolved");
    let pid = first["profile_id"].as_str().expect("profile").to_string();
    let mut more = person.clone();
    more["type"] = json!("page");
    app.send_processed(&source.hook, &more).await;
    // No event name: fails mapping, so it is linked to no profile, but its
    // record and its error entry hold the email.
    let failed = app
        .send_processed(&source.hook, &json!({"email": EMAIL, "name": NAME}))
        .await;
    assert_eq!(failed["status"], "failed");
    // Refused at decode: only the error log's excerpt holds it.
    let r = app
        .send_raw(
            &source.hook,
            "application/json",
            format!(r#"{{"email": "{EMAIL}", "user": "{EXTERNAL}", "#),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Someone else, who must keep everything.
    let other = app
        .send_processed(
            &source.hook,
            &json!({"type": "order", "email": OTHER_EMAIL, "name": "Bob Keeper", "plan": "gold"}),
        )
        .await;
    let other_pid = other["profile_id"].as_str().expect("profile").to_string();
    let schema = app
        .api_json(&format!("/api/sources/{}/schema", source.id))
        .await;
    assert!(
        schema.to_string().contains(NAME),
        "the name is a schema example: {schema}"
    );
    let erased_values = [EMAIL, EXTERNAL, VISITOR, NAME];
    assert!(!leaks(&app.dir, &erased_values, |_| false).is_empty());

    let r = app
        .api_send(Method::DELETE, &format!("/api/profiles/{pid}"), json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.expect("json");
    assert_eq!(report["profile_id"], pid.as_str());
    assert_eq!(report["linked_events"], 2, "{report}");
    assert_eq!(report["other_events"], 1, "{report}");
    assert_eq!(report["log_records"], 3, "{report}");
    // The decode refusal's excerpt (the failed mapping's entry names no value).
    assert!(
        report["error_entries"].as_u64().expect("count") >= 1,
        "{report}"
    );
    assert!(
        report["schema_examples"].as_u64().expect("count") >= 3,
        "{report}"
    );
    assert_eq!(report["database_rewrite"], "at_next_start");

    // Everything outside sled's files is clean at once: the event log,
    // which holds the events themselves, included.
    let outside = leaks(&app.dir, &erased_values, in_sled);
    assert!(outside.is_empty(), "{outside:?}");
    // Through the API too: the schema, the error log, the events.
    let schema = app
        .api_json(&format!("/api/sources/{}/schema", source.id))
        .await;
    let errors = app.errors("").await;
    let failed_now = app.event(failed["id"].as_str().expect("id")).await;
    for text in [
        schema.to_string(),
        json!(errors).to_string(),
        failed_now.to_string(),
    ] {
        let lower = text.to_lowercase();
        for v in erased_values {
            assert!(!lower.contains(&v.to_lowercase()), "{v} in {text}");
        }
    }
    // The other person is served as before.
    assert_eq!(
        app.profile_by_email(OTHER_EMAIL).await["id"],
        other_pid.as_str()
    );
    let kept = app.event(other["id"].as_str().expect("id")).await;
    assert!(kept.to_string().contains("Bob Keeper"), "{kept}");

    // sled keeps stale copies in its files until the rewrite at the next
    // start; after it, no file anywhere holds any of the values.
    let app = app.restart().await;
    let everywhere = leaks(&app.dir, &erased_values, |_| false);
    assert!(everywhere.is_empty(), "{everywhere:?}");
    assert_eq!(
        app.profile_by_email(OTHER_EMAIL).await["id"],
        other_pid.as_str()
    );
    let kept = app.event(other["id"].as_str().expect("id")).await;
    assert!(kept.to_string().contains("Bob Keeper"), "{kept}");
    assert_eq!(
        app.event(failed["id"].as_str().expect("id")).await["status"],
        "failed"
    );
    let r = app.try_profile_by("email", EMAIL).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The erasure itself is remembered, without the values.
    let history = app.profile_history(&pid).await;
    assert!(history.iter().any(|h| h["kind"] == "erasure"));
    // New events keep flowing, and the same person may come back as new.
    let again = app.send_processed(&source.hook, &person).await;
    assert_eq!(again["status"], "resolved");
    assert_ne!(again["profile_id"], pid.as_str());
}

backend_tests! {
    #[tokio::test]
    async fn erasing_an_unknown_profile_is_a_404_and_changes_nothing() {
        let app = spawn_app().await;
        let r = app
            .api_send(
                Method::DELETE,
                "/api/profiles/0190d6a4-0000-7000-8000-000000000000",
                json!({}),
            )
            .await;
        let error = error_of(r, StatusCode::NOT_FOUND).await;
        assert!(error.contains("no profile"), "{error}");
        assert!(!app.dir.join("db.rewrite-requested").exists());
    }
}
