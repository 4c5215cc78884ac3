//! An acknowledged event survives `kill -9`: the real binary runs as a child
//! process, is killed mid-burst, restarted, and every 202'd id is there once.

mod common;

use common::process::InletProcess;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "durability-admin-token-0123456789";

#[tokio::test]
async fn every_acknowledged_event_survives_kill_dash_nine() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut inlet = InletProcess::start(dir.path(), TOKEN).await;
    let client = inlet.client.clone();
    let base = inlet.base.clone();

    let source = inlet
        .send_json(
            reqwest::Method::POST,
            "/api/sources",
            &json!({"name": "crash"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let hook = format!("{base}{}", source["webhook_path"].as_str().unwrap());
    let source_id = source["id"].as_str().unwrap().to_string();
    // Every event joins one of 16 profiles, so after the crash the profiles'
    // event counts show whether anything was resolved twice.
    let mapped = inlet
        .send_json(
            reqwest::Method::PUT,
            &format!("/api/sources/{source_id}/mapping"),
            &json!({"event_name": "tick", "email": "w{{worker}}@example.org"}),
        )
        .await;
    assert_eq!(mapped.status(), 200);

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut senders = Vec::new();
    for worker in 0..16 {
        let (client, hook, acked) = (client.clone(), hook.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            for n in 0.. {
                let body =
                    json!([{"worker": worker, "n": n}, {"worker": worker, "n": n, "second": true}]);
                let Ok(response) = client.post(&hook).json(&body).send().await else {
                    break;
                };
                if response.status() != 202 {
                    break;
                }
                let Ok(body) = response.json::<Value>().await else {
                    break;
                };
                let ids = body["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string());
                acked.lock().unwrap().extend(ids);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    inlet.kill();
    for s in senders {
        let _ = s.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "the burst got going ({} acked)",
        acked.len()
    );

    inlet.restart().await;
    for id in &acked {
        let r = inlet.get(&format!("/api/events/{id}")).await;
        assert_eq!(r.status(), 200, "acknowledged event {id} was lost");
    }
    // Exactly once: the per-source listing holds no id twice, and every
    // stored record of a request is there with its sibling (all-or-nothing).
    let mut seen = std::collections::HashSet::new();
    let mut before = String::new();
    loop {
        let page = inlet
            .get_json(&format!(
                "/api/events?source_id={source_id}&limit=500&before={before}"
            ))
            .await;
        for e in page["events"].as_array().unwrap() {
            assert!(
                seen.insert(e["id"].as_str().unwrap().to_string()),
                "an event is stored twice"
            );
        }
        match page["next"].as_str() {
            Some(next) => before = next.to_string(),
            None => break,
        }
    }
    assert!(seen.len() >= acked.len());
    assert_eq!(seen.len() % 2, 0, "a request was stored in part");

    // Processed exactly once: the processor finishes what the crash cut off
    // (from the log), and the profiles count each stored event once.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let counts = loop {
        let source = inlet.get_json(&format!("/api/sources/{source_id}")).await;
        let counts = source["counts"].clone();
        if counts["pending"] == 0 || std::time::Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        counts["pending"], 0,
        "the processor did not catch up: {counts}"
    );
    assert_eq!(counts["resolved"], seen.len(), "{counts}");
    let mut profile_events = 0;
    for worker in 0..16 {
        let r = inlet
            .get(&format!("/api/profiles?email=w{worker}@example.org"))
            .await;
        if r.status() == 200 {
            profile_events += r.json::<Value>().await.unwrap()["event_count"]
                .as_u64()
                .unwrap();
        }
    }
    assert_eq!(
        profile_events,
        seen.len() as u64,
        "an event was resolved twice or not at all"
    );
}

/// A marketer creates a source and saves its mapping; the machine dies at
/// once. After the restart the URL the API handed out takes hooks, and the
/// mapping is the saved one: configuration is durable when the API
/// answers, not half a second later (embedded; PostgreSQL commits it).
#[tokio::test]
async fn a_source_and_mapping_just_saved_survive_kill_dash_nine() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut inlet = InletProcess::start(dir.path(), TOKEN).await;
    let source = inlet
        .send_json(
            reqwest::Method::POST,
            "/api/sources",
            &json!({"name": "just made"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let id = source["id"].as_str().unwrap().to_string();
    let saved = inlet
        .send_json(
            reqwest::Method::PUT,
            &format!("/api/sources/{id}/mapping"),
            &json!({"event_name": "{{kind}}_saved_just_now", "email": "{{email}}"}),
        )
        .await;
    assert_eq!(saved.status(), 200, "{:?}", saved.text().await);
    // No pause: sled's own flush runs every 500 ms.
    inlet.restart().await;

    let hook = inlet.url(source["webhook_path"].as_str().unwrap());
    let answer = inlet
        .client
        .post(&hook)
        .json(&json!({"kind": "mapping", "email": "a@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202, "the URL handed out before the crash");
    let ids: Value = answer.json().await.unwrap();
    let event_id = ids["ids"][0].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let event = inlet.get_json(&format!("/api/events/{event_id}")).await;
        if event["status"] != "pending" {
            assert_eq!(event["name"], "mapping_saved_just_now", "{event}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "stayed pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
