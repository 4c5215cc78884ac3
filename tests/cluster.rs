//! Three real `inlet` processes on one PostgreSQL: what a team running
//! several nodes behind a load balancer is promised. Senders spread over
//! all three; a node that does not process is killed (`kill -9`) under
//! load and started again, then the processing node is; afterwards every
//! event that got a 202 is stored exactly once and processed exactly once,
//! and every node shows the same counts. Skipped (`SKIPPED postgres tests`)
//! without PostgreSQL on the machine; `.ci/run` requires it.

mod common;

use common::pg;
use common::process::InletProcess;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "cluster-admin-token-0123456789abcdef";
/// Every node must share the secret key (a node with another refuses to start).
const SECRET_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const PEOPLE: u64 = 20;

async fn start_nodes(url: &str, dirs: &[tempfile::TempDir]) -> Vec<InletProcess> {
    let env = vec![
        ("INLET_DATABASE_URL".to_string(), url.to_string()),
        ("INLET_SECRET_KEY".to_string(), SECRET_KEY.to_string()),
    ];
    let mut nodes = Vec::new();
    for dir in dirs {
        nodes.push(InletProcess::start_with_env(dir.path(), TOKEN, env.clone()).await);
    }
    nodes
}

/// Whether `node` says it holds the processing lease (`/healthz`).
async fn processing(client: &reqwest::Client, base: &str) -> bool {
    match client.get(format!("{base}/healthz")).send().await {
        Ok(r) => r
            .json::<Value>()
            .await
            .is_ok_and(|h| h["processing"] == true),
        Err(_) => false,
    }
}

async fn leader(nodes: &[InletProcess]) -> Option<usize> {
    for (i, node) in nodes.iter().enumerate() {
        if processing(&node.client, &node.base).await {
            return Some(i);
        }
    }
    None
}

/// Waits until some node processes; how long it took.
async fn wait_for_leader(nodes: &[InletProcess], within: Duration) -> (usize, Duration) {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Some(i) = leader(nodes).await {
            return (i, start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no node took the processing lease within {within:?}");
}

/// Senders over every node until `stop`, each waiting `pace` between
/// requests: each request's ids when it got a 202.
fn spawn_senders(
    hooks: Vec<String>,
    stop: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<String>>>,
    next: Arc<AtomicU64>,
    pace: Duration,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..6)
        .map(|sender| {
            let hook = hooks[sender % hooks.len()].clone();
            let (stop, accepted, next) = (stop.clone(), accepted.clone(), next.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(pace).await;
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    let body =
                        json!({"type": "order", "n": n, "email": format!("p{}@x.io", n % PEOPLE)});
                    let Ok(response) = client.post(&hook).json(&body).send().await else {
                        // The node is down: the sender tries again later.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    if response.status() == 202 {
                        let answer: Value = response.json().await.unwrap();
                        let ids = answer["ids"].as_array().unwrap();
                        let mut accepted = accepted.lock().unwrap();
                        accepted.extend(ids.iter().map(|i| i.as_str().unwrap().to_string()));
                    }
                }
            })
        })
        .collect()
}

/// Every stored event of the source on `node`, newest first, paged.
async fn stored_events(node: &InletProcess, source: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut before = String::new();
    loop {
        let page = node
            .get_json(&format!("/api/events?source_id={source}&limit=200{before}"))
            .await;
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => before = format!("&before={next}"),
            None => return out,
        }
    }
}

/// A source made through `node`: its id and webhook path.
async fn create_source(node: &InletProcess) -> (String, String) {
    let source: Value = node
        .send_json(
            reqwest::Method::POST,
            "/api/sources",
            &json!({"name": "shop"}),
        )
        .await
        .json()
        .await
        .unwrap();
    (
        source["id"].as_str().unwrap().to_string(),
        source["webhook_path"].as_str().unwrap().to_string(),
    )
}

async fn counts(node: &InletProcess, source: &str) -> Value {
    node.get_json(&format!("/api/sources/{source}")).await["counts"].clone()
}

/// Waits until `node` shows nothing pending and `expected` processed.
async fn wait_processed(node: &InletProcess, source: &str, expected: u64) -> Value {
    let start = Instant::now();
    loop {
        let c = counts(node, source).await;
        if c["pending"] == 0 && c["resolved"].as_u64() >= Some(expected) {
            return c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not processed: {c}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_lose_nothing_and_process_everything_once_when_nodes_die() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database_url();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::TempDir::new().unwrap()).collect();
    let mut nodes = start_nodes(&url, &dirs).await;

    // A source made on A takes hooks at B at once; a mapping saved on A is
    // used for events that arrive at C.
    let (id, path) = create_source(&nodes[0]).await;
    let first = nodes[1]
        .client
        .post(nodes[1].url(&path))
        .json(&json!({"type": "probe", "email": "probe@x.io"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        first.status(),
        202,
        "node B takes a source made on A at once"
    );
    let mapping =
        json!({"event_name": "{{type}}", "email": "{{email}}", "properties": {"n": "{{n}}"}});
    let saved = nodes[0]
        .send_json(
            reqwest::Method::PUT,
            &format!("/api/sources/{id}/mapping"),
            &mapping,
        )
        .await;
    assert_eq!(saved.status(), 200);
    let mapped = nodes[2]
        .client
        .post(nodes[2].url(&path))
        .json(&json!({"type": "mapped_on_c", "email": "probe@x.io", "n": -1}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let mapped_id = mapped["ids"][0].as_str().unwrap().to_string();

    // Load over all three; kill a non-processing node, then the processing one.
    let (stop, accepted, next) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(AtomicU64::new(0)),
    );
    let hooks: Vec<String> = nodes.iter().map(|n| n.url(&path)).collect();
    let senders = spawn_senders(
        hooks,
        stop.clone(),
        accepted.clone(),
        next.clone(),
        Duration::ZERO,
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (lead, _) = wait_for_leader(&nodes, Duration::from_secs(10)).await;
    let follower = (lead + 1) % 3;
    nodes[follower].kill();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    nodes[follower].start_again().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (lead, _) = wait_for_leader(&nodes, Duration::from_secs(10)).await;
    nodes[lead].kill();
    let others: Vec<usize> = (0..3).filter(|i| *i != lead).collect();
    let start = Instant::now();
    let takeover = loop {
        let mut found = None;
        for i in &others {
            if processing(&nodes[*i].client, &nodes[*i].base).await {
                found = Some(start.elapsed());
            }
        }
        if let Some(t) = found {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no takeover within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("cluster: the processing lease moved {takeover:?} after kill -9 of its holder");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    nodes[lead].start_again().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::SeqCst);
    for s in senders {
        s.await.unwrap();
    }
    let accepted: Vec<String> = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() > 50,
        "the load ran: {} accepted",
        accepted.len()
    );

    // Every 202'd event is stored once and processed once.
    let at_least = accepted.len() as u64 + 2;
    let settled = wait_processed(&nodes[0], &id, at_least).await;
    let events = stored_events(&nodes[2], &id).await;
    let stored: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "no event is stored twice");
    let missing: Vec<&String> = accepted
        .iter()
        .filter(|a| !unique.contains(a.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    assert!(
        events.iter().all(|e| e["status"] == "resolved"),
        "every event processed"
    );
    let on_c = events
        .iter()
        .find(|e| e["id"] == mapped_id.as_str())
        .unwrap();
    assert_eq!(on_c["name"], "mapped_on_c", "A's mapping applied at C");
    // Processed once: the people's profiles hold each event once.
    let mut per_person: HashMap<String, u64> = HashMap::new();
    for e in &events {
        *per_person
            .entry(e["email"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for (email, n) in &per_person {
        let profile = nodes[1]
            .get_json(&format!("/api/profiles?email={email}"))
            .await;
        assert_eq!(
            profile["event_count"].as_u64(),
            Some(*n),
            "{email}: {profile}"
        );
    }
    assert_eq!(settled["resolved"].as_u64(), Some(stored.len() as u64));
    // Every node shows the same counts (followers refresh about every second).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut seen = Vec::new();
    for node in &nodes {
        seen.push(counts(node, &id).await);
    }
    assert!(
        seen.iter().all(|c| c == &seen[0]),
        "counts differ: {seen:?}"
    );
    assert_eq!(seen[0]["received"].as_u64(), Some(stored.len() as u64));
    println!(
        "cluster: {} acknowledged by the load, {} stored with the two probes, counts {}",
        accepted.len(),
        stored.len(),
        seen[0]
    );

    // Forty concurrent events with one email, over three nodes: one profile.
    let client = reqwest::Client::new();
    let sends: Vec<_> = (0..40)
        .map(|i| {
            let (client, hook) = (client.clone(), nodes[i % 3].url(&path));
            tokio::spawn(async move {
                let body = json!({"type": "signup", "email": "same@x.io", "n": 1000 + i});
                client.post(hook).json(&body).send().await.unwrap().status()
            })
        })
        .collect();
    for s in sends {
        assert_eq!(s.await.unwrap(), 202);
    }
    wait_processed(&nodes[0], &id, stored.len() as u64 + 40).await;
    let profile = nodes[2].get_json("/api/profiles?email=same@x.io").await;
    assert_eq!(
        profile["event_count"], 40,
        "one profile holds all forty: {profile}"
    );
}

/// The ids a live tail (`/events/stream`) sends, as they arrive, with how
/// many times each was sent.
fn read_tail(mut stream: reqwest::Response) -> Arc<Mutex<HashMap<String, u32>>> {
    let shown = Arc::new(Mutex::new(HashMap::new()));
    let into = shown.clone();
    tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find('\n') {
                let line: String = buffer.drain(..=end).collect();
                let Some(data) = line.trim_end().strip_prefix("data: ") else {
                    continue;
                };
                if let Ok(event) = serde_json::from_str::<Value>(data) {
                    if let Some(id) = event["id"].as_str() {
                        *into.lock().unwrap().entry(id.to_string()).or_insert(0) += 1;
                    }
                }
            }
        }
    });
    shown
}

/// A support person watching the live tail on one node sees every event
/// any node accepted, once, though event ids come from three clocks and an
/// event can commit after one with a larger id from another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_tail_on_one_node_shows_every_event_any_node_accepted() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database_url();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::TempDir::new().unwrap()).collect();
    let nodes = start_nodes(&url, &dirs).await;
    let (_, path) = create_source(&nodes[0]).await;

    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = browser
        .post(nodes[0].url("/login"))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303, "login");
    let stream = browser
        .get(nodes[0].url("/events/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let shown = read_tail(stream);

    // Paced so the tail's pages hold a second of events (see stream.rs).
    let (stop, accepted, next) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(AtomicU64::new(0)),
    );
    let hooks: Vec<String> = nodes.iter().map(|n| n.url(&path)).collect();
    let senders = spawn_senders(
        hooks,
        stop.clone(),
        accepted.clone(),
        next.clone(),
        Duration::from_millis(10),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::SeqCst);
    for s in senders {
        s.await.unwrap();
    }
    let accepted: Vec<String> = accepted.lock().unwrap().clone();
    assert!(accepted.len() > 50, "the load ran: {}", accepted.len());

    let start = Instant::now();
    loop {
        let missing: Vec<String> = {
            let shown = shown.lock().unwrap();
            accepted
                .iter()
                .filter(|id| !shown.contains_key(*id))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{} of {} accepted events never reached the tail, e.g. {:?}",
            missing.len(),
            accepted.len(),
            &missing[..missing.len().min(3)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shown = shown.lock().unwrap();
    let twice: Vec<_> = shown.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    println!(
        "cluster: the tail on one node showed all {} events accepted over three",
        accepted.len()
    );
}
