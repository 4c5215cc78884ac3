//! `GET /metrics`: an operator scrapes it with Prometheus and sees requests,
//! events, the processor's lag and the group commit move.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

/// The value of an unlabelled or fully labelled sample line, if present.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200, "no auth needed");
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("application/openmetrics-text"));
    response.text().await.unwrap()
}

backend_tests! {
    #[tokio::test]
    async fn an_operator_sees_requests_events_flushes_and_lag_move() {
        let app = spawn_app().await;
        let source = app.source_named("Metered").await;
        let before = scrape(&app).await;
        assert_eq!(sample(&before, "inlet_events_ingested_total"), Some(0.0));
        assert!(before.trim_end().ends_with("# EOF"));

        let ids = app
            .send_ok(&source.hook, &json!([{"n": 1}, {"n": 2}]))
            .await;
        app.send(&format!("{}x", source.hook), &json!({})).await;
        app.processed_event(&ids[1]).await;

        // The processor's counters land just after the event state; poll briefly.
        let mut text = scrape(&app).await;
        for _ in 0..40 {
            if sample(&text, r#"inlet_events_processed_total{status="unmapped"}"#) == Some(2.0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
            text = scrape(&app).await;
        }
        let hooks_202 = r#"inlet_http_requests_total{route="hooks",status="202"}"#;
        let hooks_404 = r#"inlet_http_requests_total{route="hooks",status="404"}"#;
        assert_eq!(sample(&text, hooks_202), Some(1.0), "{text}");
        assert_eq!(sample(&text, hooks_404), Some(1.0));
        assert_eq!(sample(&text, "inlet_events_ingested_total"), Some(2.0));
        assert_eq!(
            sample(&text, r#"inlet_events_processed_total{status="unmapped"}"#),
            Some(2.0)
        );
        assert_eq!(sample(&text, "inlet_processor_lag_events"), Some(0.0));
        assert!(sample(&text, "inlet_flush_total").unwrap_or(0.0) >= 1.0);
        assert!(sample(&text, "inlet_flush_batch_size").unwrap_or(0.0) >= 1.0);
        assert_eq!(sample(&text, "inlet_ingest_seconds_count"), Some(2.0));
        assert!(sample(&text, "inlet_process_seconds_count").unwrap_or(0.0) >= 1.0);
        assert!(!text.contains(&source.id), "no source ids");
        assert!(!text.contains(source.hook.trim_start_matches("/hooks/")));
    }
}
