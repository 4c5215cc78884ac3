//! An acknowledged event survives `kill -9`: the real binary runs as a child
//! process, is killed mid-burst, restarted, and every 202'd id is there once.

use reqwest::Client;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "durability-admin-token-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_inlet"))
        .arg("--data-dir")
        .arg(dir)
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .env("INLET_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start inlet")
}

/// GET with the admin token, as JSON.
/// An admin GET.
async fn get(client: &Client, url: &str) -> reqwest::Response {
    client.get(url).bearer_auth(TOKEN).send().await.unwrap()
}

async fn get_json(client: &Client, url: &str) -> Value {
    get(client, url).await.json().await.unwrap()
}

async fn wait_ready(client: &Client, base: &str) {
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("inlet did not start");
}

#[tokio::test]
async fn every_acknowledged_event_survives_kill_dash_nine() {
    let dir = tempfile::TempDir::new().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new();
    let mut child = start(dir.path(), port);
    wait_ready(&client, &base).await;

    let source: Value = client
        .post(format!("{base}/api/sources"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "crash"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hook = format!("{base}{}", source["webhook_path"].as_str().unwrap());
    let source_id = source["id"].as_str().unwrap().to_string();
    // Every event joins one of 16 profiles, so after the crash the profiles'
    // event counts show whether anything was resolved twice.
    let mapped = client
        .put(format!("{base}/api/sources/{source_id}/mapping"))
        .bearer_auth(TOKEN)
        .json(&json!({"event_name": "tick", "email": "w{{worker}}@example.org"}))
        .send()
        .await
        .unwrap();
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
    child.kill().expect("kill -9");
    let _ = child.wait();
    for s in senders {
        let _ = s.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "the burst got going ({} acked)",
        acked.len()
    );

    let mut child = start(dir.path(), port);
    wait_ready(&client, &base).await;
    for id in &acked {
        let r = get(&client, &format!("{base}/api/events/{id}")).await;
        assert_eq!(r.status(), 200, "acknowledged event {id} was lost");
    }
    // Exactly once: the per-source listing holds no id twice, and every
    // stored record of a request is there with its sibling (all-or-nothing).
    let mut seen = std::collections::HashSet::new();
    let mut before = String::new();
    loop {
        let page = get_json(
            &client,
            &format!("{base}/api/events?source_id={source_id}&limit=500&before={before}"),
        )
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
        let source = get_json(&client, &format!("{base}/api/sources/{source_id}")).await;
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
        let r = get(
            &client,
            &format!("{base}/api/profiles?email=w{worker}@example.org"),
        )
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
    child.kill().ok();
    let _ = child.wait();
}
