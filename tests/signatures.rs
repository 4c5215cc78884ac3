//! Signature verification and redelivery through the real server (issue 18):
//! each scheme with a valid and a bad signature, the 401 codes, the error
//! log's `auth` stage, secrets never shown or logged, rotation with two
//! secrets, redelivery answered with the first ids (also after a restart
//! and when two arrive at once).

mod common;

use base64::Engine;
use common::*;
use hmac::{Hmac, Mac};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

const GITHUB_SECRET: &str = "gh-secret-that-must-never-leak";
const STRIPE_SECRET: &str = "whsec_stripe-secret-never-leaks";
const SHOPIFY_SECRET: &str = "shpss_shopify-secret-never-leaks";
/// The Standard Webhooks spec's example secret.
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn github_sig(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex(&hmac256(secret.as_bytes(), &[body])))
}

fn stripe_sig(secret: &str, t: i64, body: &[u8]) -> String {
    let t = t.to_string();
    let sig = hmac256(secret.as_bytes(), &[t.as_bytes(), b".", body]);
    format!("t={t},v1={}", hex(&sig))
}

fn standard_sig(secret: &str, id: &str, t: i64, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("base64 key");
    let t = t.to_string();
    let sig = hmac256(&key, &[id.as_bytes(), b".", t.as_bytes(), b".", body]);
    format!("v1,{}", b64(&sig))
}

/// Server log lines of this test binary, to look for secrets in.
fn server_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        log
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl TestApp {
    async fn hook(&self, hook: &str, headers: &[(&str, String)], body: &[u8]) -> Response {
        let mut request = self
            .client
            .post(self.url(hook))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.expect("request")
    }

    async fn source_json(&self, source: &TestSource) -> Value {
        self.api_json(&format!("/api/sources/{}", source.id)).await
    }

    async fn patch_source(&self, source: &TestSource, body: Value) -> Response {
        self.api_send(Method::PATCH, &format!("/api/sources/{}", source.id), body)
            .await
    }
}

/// A 401's `code`, and its message.
async fn refused(response: Response) -> (String, String) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.expect("json");
    (
        body["code"].as_str().expect("code").to_string(),
        body["error"].as_str().expect("error").to_string(),
    )
}

async fn accepted(response: Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body
}

backend_tests! {
    #[tokio::test]
    async fn a_github_source_accepts_signed_requests_and_refuses_the_rest_without_leaking_its_secret() {
        let log = server_log();
        let app = spawn_app().await;
        let source = app
            .create_source(
                json!({"name": "gh", "verify": {"scheme": "github", "secrets": [GITHUB_SECRET]}}),
            )
            .await;
        assert!(!source.body.to_string().contains(GITHUB_SECRET));
        assert_eq!(source.body["verify"]["scheme"], "github");
        assert_eq!(source.body["verify"]["secret_required"], false);
        let body = br#"{"email":"a@example.com","event":"push"}"#;

        let ok = app
            .hook(
                &source.hook,
                &[("x-hub-signature-256", github_sig(GITHUB_SECRET, body))],
                body,
            )
            .await;
        accepted(ok).await;

        let (code, message) = refused(
            app.hook(
                &source.hook,
                &[("x-hub-signature-256", github_sig("wrong", body))],
                body,
            )
            .await,
        )
        .await;
        assert_eq!(code, "bad_signature");
        assert!(message.contains("x-hub-signature-256"), "{message}");

        let tampered = br#"{"email":"b@example.com","event":"push"}"#;
        let (code, _) = refused(
            app.hook(
                &source.hook,
                &[("x-hub-signature-256", github_sig(GITHUB_SECRET, body))],
                tampered,
            )
            .await,
        )
        .await;
        assert_eq!(code, "bad_signature");

        let (code, message) = refused(app.hook(&source.hook, &[], body).await).await;
        assert_eq!(code, "missing_signature");
        assert!(message.contains("x-hub-signature-256"), "{message}");

        let (code, _) = refused(
            app.hook(
                &source.hook,
                &[("x-hub-signature-256", "md5=abc".into())],
                body,
            )
            .await,
        )
        .await;
        assert_eq!(code, "malformed_signature_header");

        let truncated = github_sig(GITHUB_SECRET, body)[..41].to_string();
        let (code, _) = refused(
            app.hook(&source.hook, &[("x-hub-signature-256", truncated)], body)
                .await,
        )
        .await;
        assert_eq!(code, "bad_signature");

        let errors = app
            .errors(&format!("source_id={}&stage=auth", source.id))
            .await;
        let codes: Vec<&str> = errors.iter().map(|e| e["code"].as_str().unwrap()).collect();
        for code in [
            "bad_signature",
            "missing_signature",
            "malformed_signature_header",
        ] {
            assert!(codes.contains(&code), "{codes:?}");
        }
        let expected = github_sig(GITHUB_SECRET, body);
        let everything = [
            serde_json::to_string(&errors).unwrap(),
            app.api_json("/api/sources").await.to_string(),
            app.source_json(&source).await.to_string(),
            app.api_json("/api/errors?limit=100").await.to_string(),
        ]
        .concat();
        assert!(!everything.contains(GITHUB_SECRET));
        assert!(
            !everything.contains(&expected[7..]),
            "the expected signature is never shown"
        );
        let logged = String::from_utf8_lossy(&log.lock().unwrap()).to_string();
        assert!(logged.contains("refused"), "the log is captured");
        assert!(!logged.contains(GITHUB_SECRET));
        // The stored event does not keep the signature beside its body.
        let events = app
            .api_json(&format!("/api/events?source_id={}", source.id))
            .await;
        assert!(!events.to_string().contains(&expected[7..]));
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_stripe_source_checks_t_and_answers_a_retried_event_with_its_first_ids() {
        let app = spawn_app().await;
        let source = app
            .create_source(
                json!({"name": "stripe", "verify": {"scheme": "stripe", "secrets": [STRIPE_SECRET]}}),
            )
            .await;
        assert_eq!(source.body["verify"]["tolerance_s"], 300);
        let body = br#"{"id":"evt_1","type":"invoice.paid","data":{"object":{"customer":"cus_1"}}}"#;

        let first = accepted(
            app.hook(
                &source.hook,
                &[("stripe-signature", stripe_sig(STRIPE_SECRET, now(), body))],
                body,
            )
            .await,
        )
        .await;
        assert!(first.get("redelivery").is_none());
        // Stripe retries with the same event (and id), signed afresh.
        let again = accepted(
            app.hook(
                &source.hook,
                &[("stripe-signature", stripe_sig(STRIPE_SECRET, now(), body))],
                body,
            )
            .await,
        )
        .await;
        assert_eq!(again["ids"], first["ids"]);
        assert_eq!(again["redelivery"], true);
        let counts = &app.source_json(&source).await["counts"];
        assert_eq!(counts["received"], 1, "{counts}");
        assert_eq!(counts["redelivered"], 1, "{counts}");

        let (code, message) = refused(
            app.hook(
                &source.hook,
                &[(
                    "stripe-signature",
                    stripe_sig(STRIPE_SECRET, now() - 1000, body),
                )],
                body,
            )
            .await,
        )
        .await;
        assert_eq!(code, "timestamp_outside_tolerance");
        assert!(message.contains("in the past"), "{message}");
        let (code, message) = refused(
            app.hook(
                &source.hook,
                &[(
                    "stripe-signature",
                    stripe_sig(STRIPE_SECRET, now() + 1000, body),
                )],
                body,
            )
            .await,
        )
        .await;
        assert_eq!(code, "timestamp_outside_tolerance");
        assert!(message.contains("in the future"), "{message}");
        let (code, _) = refused(
            app.hook(
                &source.hook,
                &[("stripe-signature", stripe_sig("whsec_other", now(), body))],
                body,
            )
            .await,
        )
        .await;
        assert_eq!(code, "bad_signature");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_shopify_source_verifies_base64_signatures() {
        let app = spawn_app().await;
        let source = app
            .create_source(
                json!({"name": "shop", "verify": {"scheme": "shopify", "secrets": [SHOPIFY_SECRET]}}),
            )
            .await;
        let body = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;
        let sig = b64(&hmac256(SHOPIFY_SECRET.as_bytes(), &[body]));
        let headers = [
            ("x-shopify-hmac-sha256", sig.clone()),
            (
                "x-shopify-webhook-id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043".to_string(),
            ),
        ];
        let first = accepted(app.hook(&source.hook, &headers, body).await).await;
        let again = accepted(app.hook(&source.hook, &headers, body).await).await;
        assert_eq!(again["ids"], first["ids"]);
        let (code, _) = refused(
            app.hook(
                &source.hook,
                &[("x-shopify-hmac-sha256", sig)],
                br#"{"id":1}"#,
            )
            .await,
        )
        .await;
        assert_eq!(code, "bad_signature");
        let (code, _) = refused(
            app.hook(
                &source.hook,
                &[("x-shopify-hmac-sha256", "***".into())],
                body,
            )
            .await,
        )
        .await;
        assert_eq!(code, "malformed_signature_header");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_standard_webhooks_redelivery_survives_a_restart() {
        let app = spawn_app().await;
        let source = app
            .create_source(json!({"name": "sw", "verify": {"scheme": "standard_webhooks", "secrets": [SW_SECRET]}}))
            .await;
        // The spec's vector is validly signed but from 2021: refused for its age
        // only, which shows its signature verified.
        let vector = [
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".to_string()),
            ("webhook-timestamp", "1614265330".to_string()),
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_string(),
            ),
        ];
        let (code, message) = refused(
            app.hook(&source.hook, &vector, br#"{"test": 2432232314}"#)
                .await,
        )
        .await;
        assert_eq!(code, "timestamp_outside_tolerance");
        assert!(message.contains("in the past"), "{message}");

        let body = br#"{"email":"c@example.com"}"#;
        let signed = |t: i64| {
            vec![
                ("webhook-id", "msg_1".to_string()),
                ("webhook-timestamp", t.to_string()),
                (
                    "webhook-signature",
                    standard_sig(SW_SECRET, "msg_1", t, body),
                ),
            ]
        };
        let first = accepted(app.hook(&source.hook, &signed(now()), body).await).await;
        let (code, _) = refused(
            app.hook(
                &source.hook,
                &[
                    ("webhook-id", "x".into()),
                    ("webhook-timestamp", now().to_string()),
                    ("webhook-signature", "nonsense".into()),
                ],
                body,
            )
            .await,
        )
        .await;
        assert_eq!(code, "malformed_signature_header");

        let app = app.restart().await;
        let again = accepted(app.hook(&source.hook, &signed(now()), body).await).await;
        assert_eq!(again["ids"], first["ids"]);
        let counts = &app.source_json(&source).await["counts"];
        assert_eq!(counts["received"], 1, "{counts}");
        assert_eq!(counts["redelivered"], 1, "{counts}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn two_redeliveries_at_once_store_one_delivery() {
        let app = spawn_app().await;
        let source = app
            .create_source(
                json!({"name": "gh", "verify": {"scheme": "github", "secrets": [GITHUB_SECRET]}}),
            )
            .await;
        let body = br#"{"email":"d@example.com"}"#;
        let headers = [
            ("x-hub-signature-256", github_sig(GITHUB_SECRET, body)),
            (
                "x-github-delivery",
                "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_string(),
            ),
        ];
        let sends = (0..4).map(|_| app.hook(&source.hook, &headers, body));
        let answers = futures::future::join_all(sends).await;
        let mut ids = Vec::new();
        for answer in answers {
            ids.push(accepted(answer).await["ids"].clone());
        }
        assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
        let counts = &app.source_json(&source).await["counts"];
        assert_eq!(counts["received"], 1, "{counts}");
        assert_eq!(counts["redelivered"], 3, "{counts}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_custom_hmac_sender_is_verified_with_its_header_and_prefix() {
        let app = spawn_app().await;
        let source = app
            .create_source(json!({"name": "custom", "verify": {
                "scheme": "hmac", "header": "X-Signature", "encoding": "base64", "prefix": "sig=",
                "timestamp_header": "X-Timestamp", "signed_content": "{timestamp}.{body}",
                "secrets": ["custom-secret-0001"]
            }}))
            .await;
        assert_eq!(source.body["verify"]["hmac"]["header"], "x-signature");
        let body = br#"{"email":"e@example.com"}"#;
        let t = now().to_string();
        let sig = b64(&hmac256(b"custom-secret-0001", &[t.as_bytes(), b".", body]));
        let headers = [("x-signature", format!("sig={sig}")), ("x-timestamp", t)];
        accepted(app.hook(&source.hook, &headers, body).await).await;
        let (code, message) = refused(app.hook(&source.hook, &headers[..1], body).await).await;
        assert_eq!(code, "missing_signature");
        assert!(message.contains("x-timestamp"), "{message}");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_secret_is_rotated_without_a_gap() {
        let app = spawn_app().await;
        let source = app
            .create_source(
                json!({"name": "gh", "verify": {"scheme": "github", "secrets": ["old-secret-01"]}}),
            )
            .await;
        let body = br#"{"email":"f@example.com"}"#;
        let with = |secret: &str| vec![("x-hub-signature-256", github_sig(secret, body))];

        let r = app
            .patch_source(&source, json!({"verify": {"add_secret": "new-secret-02"}}))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let view: Value = r.json().await.unwrap();
        assert_eq!(
            view["verify"]["secrets"].as_array().unwrap().len(),
            2,
            "{view}"
        );
        assert!(!view.to_string().contains("new-secret-02"));
        accepted(app.hook(&source.hook, &with("old-secret-01"), body).await).await;
        accepted(app.hook(&source.hook, &with("new-secret-02"), body).await).await;

        let r = app
            .patch_source(&source, json!({"verify": {"remove_secret": 0}}))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let (code, _) = refused(app.hook(&source.hook, &with("old-secret-01"), body).await).await;
        assert_eq!(code, "bad_signature");
        accepted(app.hook(&source.hook, &with("new-secret-02"), body).await).await;

        // The last secret is not removed by mistake; `null` stops verifying.
        let r = app
            .patch_source(&source, json!({"verify": {"remove_secret": 0}}))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = app
            .patch_source(&source, json!({"verify": {"remove_secret": 7}}))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = app.patch_source(&source, json!({"verify": null})).await;
        assert_eq!(r.status(), StatusCode::OK);
        accepted(app.hook(&source.hook, &[], body).await).await;
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_source_from_a_signing_preset_asks_for_its_secret() {
        let app = spawn_app().await;
        let source = app.create_source(json!({"preset": "github_push"})).await;
        assert_eq!(source.body["verify"]["scheme"], "github", "{}", source.body);
        assert_eq!(source.body["verify"]["secret_required"], true);
        let body = br#"{"sender":{"id":1}}"#;
        let (code, message) = refused(
            app.hook(
                &source.hook,
                &[("x-hub-signature-256", github_sig("x", body))],
                body,
            )
            .await,
        )
        .await;
        assert_eq!(code, "missing_signature_secret");
        assert!(message.contains("add_secret"), "{message}");

        let r = app
            .patch_source(&source, json!({"verify": {"add_secret": GITHUB_SECRET}}))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        accepted(
            app.hook(
                &source.hook,
                &[("x-hub-signature-256", github_sig(GITHUB_SECRET, body))],
                body,
            )
            .await,
        )
        .await;

        // The secret may come with the create; the scheme then comes from the preset.
        let stripe = app
            .create_source(json!({"preset": "stripe", "verify": {"secrets": [STRIPE_SECRET]}}))
            .await;
        assert_eq!(stripe.body["verify"]["scheme"], "stripe");
        assert_eq!(stripe.body["verify"]["secret_required"], false);
        let shop = app.create_source(json!({"preset": "shopify_order"})).await;
        assert_eq!(shop.body["verify"]["scheme"], "shopify");
    }
}

backend_tests! {
    #[tokio::test]
    async fn bad_verify_settings_say_what_to_fix() {
        let app = spawn_app().await;
        for (verify, needle) in [
            (json!({"secrets": ["x"]}), "scheme"),
            (json!({"scheme": "hmac", "secrets": ["x"]}), "header"),
            (
                json!({"scheme": "standard_webhooks", "secrets": ["not base64 !"]}),
                "whsec_",
            ),
            (json!({"scheme": "github", "secrets": [""]}), "empty"),
            (json!({"scheme": "github", "tolerance_s": 0}), "tolerance_s"),
            (json!({"scheme": "nope"}), "stripe"),
        ] {
            let r = app
                .api_send(
                    Method::POST,
                    "/api/sources",
                    json!({"name": "x", "verify": verify}),
                )
                .await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{verify}");
            let body: Value = r.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains(needle), "{body}");
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_source_page_sets_a_scheme_and_adds_and_removes_secrets() {
        let app = spawn_app().await;
        app.login().await;
        let source = app.source_named("Shop").await;
        let page = format!("/sources/{}", source.id);
        let (_, html) = app.page(&page).await;
        assert!(html.contains("Signatures are not checked"));
        let csrf = app.csrf(&page).await;
        let r = app
            .post_form(
                &format!("{page}/verify"),
                &[
                    ("csrf", &csrf),
                    ("scheme", "shopify"),
                    ("header", ""),
                    ("add_secret", SHOPIFY_SECRET),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (_, html) = app.page(&page).await;
        assert!(html.contains("Verifies <strong>shopify</strong>"), "{html}");
        assert!(html.contains("secret set "));
        assert!(!html.contains(SHOPIFY_SECRET));
        let view = app.source_json(&source).await;
        assert_eq!(view["verify"]["secrets"].as_array().unwrap().len(), 1);

        // Without the CSRF token nothing changes.
        let r = app
            .post_form(&format!("{page}/verify"), &[("clear", "1")])
            .await;
        assert_ne!(r.status(), StatusCode::SEE_OTHER);
        let r = app
            .post_form(
                &format!("{page}/verify"),
                &[("csrf", &csrf), ("clear", "1")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(app.source_json(&source).await["verify"].is_null());
    }
}

#[tokio::test]
async fn a_copied_database_alone_holds_no_signing_secret() {
    let mut app = spawn_app().await;
    app.create_source(
        json!({"name": "gh", "verify": {"scheme": "github", "secrets": [GITHUB_SECRET]}}),
    )
    .await;
    app.shutdown().await;
    let key_file = app.dir.join("secret.key");
    let key = std::fs::read_to_string(&key_file).expect("secret.key made on first start");
    assert_eq!(key.trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let mut stack = vec![app.dir.join("db")];
    let (mut files, mut sealed_seen) = (0, false);
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files += 1;
            let bytes = std::fs::read(&path).unwrap();
            // The setting itself is on disk, sealed.
            sealed_seen |= bytes.windows(10).any(|w| w == b"ciphertext");
            let needle = GITHUB_SECRET.as_bytes();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds the secret",
                path.display()
            );
        }
    }
    assert!(files > 0 && sealed_seen, "the sealed setting was written");
}
