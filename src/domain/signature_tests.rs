use super::*;
use base64::Engine;
use proptest::prelude::*;

const NOW: i64 = 1_700_000_000;

fn setting(scheme: Scheme) -> Verify {
    Verify {
        scheme,
        secrets: Vec::new(),
        tolerance_s: DEFAULT_TOLERANCE_S,
        redelivery_window_s: DEFAULT_REDELIVERY_WINDOW_S,
    }
}

fn secrets(list: &[&str]) -> Vec<SigningSecret> {
    list.iter()
        .map(|s| SigningSecret::new(s.as_bytes().to_vec()))
        .collect()
}

fn hmac256(key: &[u8], content: &[u8]) -> Vec<u8> {
    mac(Algorithm::Sha256, key, &[content])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Runs `verify` with the given headers.
fn check_with(
    scheme: Scheme,
    keys: &[&str],
    headers: &[(&str, String)],
    body: &[u8],
    now: i64,
) -> Result<(), SignatureRefusal> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_bytes())
    };
    verify(&setting(scheme), &secrets(keys), get, body, now)
}

fn code(result: Result<(), SignatureRefusal>) -> &'static str {
    result.err().map_or("ok", |r| r.code())
}

// --- GitHub ---

#[test]
fn githubs_documented_example_verifies() {
    let header = (
        "x-hub-signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".to_string(),
    );
    let ok = check_with(
        Scheme::Github,
        &["It's a Secret to Everybody"],
        std::slice::from_ref(&header),
        b"Hello, World!",
        NOW,
    );
    assert_eq!(ok, Ok(()));
    assert_eq!(
        code(check_with(
            Scheme::Github,
            &["It's a secret to everybody"],
            std::slice::from_ref(&header),
            b"Hello, World!",
            NOW
        )),
        "bad_signature"
    );
    assert_eq!(
        code(check_with(
            Scheme::Github,
            &["It's a Secret to Everybody"],
            &[header],
            b"Hello, World?",
            NOW
        )),
        "bad_signature"
    );
}

#[test]
fn github_empty_truncated_and_unprefixed_signatures_never_match() {
    let full = hex(&hmac256(b"k", b"body"));
    let with = |v: String| {
        check_with(
            Scheme::Github,
            &["k"],
            &[("x-hub-signature-256", v)],
            b"body",
            NOW,
        )
    };
    assert_eq!(with(format!("sha256={full}")), Ok(()));
    assert_eq!(code(with("sha256=".into())), "bad_signature");
    assert_eq!(
        code(with(format!("sha256={}", &full[..62]))),
        "bad_signature"
    );
    assert_eq!(
        code(with(format!("sha256={}", &full[..2]))),
        "bad_signature"
    );
    assert_eq!(code(with(full.clone())), "malformed_signature_header");
    assert_eq!(code(with("sha256=zz".into())), "malformed_signature_header");
    assert_eq!(code(with("".into())), "missing_signature");
    let missing = check_with(Scheme::Github, &["k"], &[], b"body", NOW).unwrap_err();
    assert!(missing.message(300).contains("x-hub-signature-256"));
}

// --- Shopify ---

#[test]
fn shopify_signs_the_raw_body_in_base64() {
    let body = br#"{"id":820982911946154508}"#;
    let sig = b64(&hmac256(b"shpss_secret", body));
    let with = |v: String, body: &[u8]| {
        check_with(
            Scheme::Shopify,
            &["shpss_secret"],
            &[("x-shopify-hmac-sha256", v)],
            body,
            NOW,
        )
    };
    assert_eq!(with(sig.clone(), body), Ok(()));
    assert_eq!(
        code(with(sig.clone(), br#"{"id":820982911946154509}"#)),
        "bad_signature"
    );
    // Truncated: valid base64 of too few bytes never matches.
    assert_eq!(code(with(sig[..20].to_string(), body)), "bad_signature");
    assert_eq!(code(with(String::new(), body)), "missing_signature");
    assert_eq!(
        code(with(b64(&hmac256(b"other", body)), body)),
        "bad_signature"
    );
    assert_eq!(code(with("%%%".into(), body)), "malformed_signature_header");
}

// --- Stripe ---

fn stripe_header(secret: &str, t: i64, body: &[u8]) -> String {
    let content = [t.to_string().as_bytes(), b".", body].concat();
    format!("t={t},v1={}", hex(&hmac256(secret.as_bytes(), &content)))
}

#[test]
fn stripe_keys_with_the_whole_whsec_string_and_checks_t() {
    let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
    let secret = "whsec_test_secret";
    let with = |v: String, now: i64| {
        check_with(
            Scheme::Stripe,
            &[secret],
            &[("stripe-signature", v)],
            body,
            now,
        )
    };
    assert_eq!(with(stripe_header(secret, NOW, body), NOW), Ok(()));
    // Any v1 may match; v0 entries are ignored.
    let two = format!(
        "t={NOW},v1={},v0=abcd,{}",
        "00".repeat(32),
        stripe_header(secret, NOW, body).split(',').nth(1).unwrap()
    );
    assert_eq!(with(two, NOW), Ok(()));
    assert_eq!(
        code(with(stripe_header("whsec_other", NOW, body), NOW)),
        "bad_signature"
    );
    let stale = with(stripe_header(secret, NOW - 301, body), NOW).unwrap_err();
    assert_eq!(
        stale,
        SignatureRefusal::Timestamp {
            off_by_s: 301,
            skew: Skew::Past
        }
    );
    assert!(stale.message(300).contains("301 s in the past"));
    let future = with(stripe_header(secret, NOW + 400, body), NOW).unwrap_err();
    assert_eq!(
        future,
        SignatureRefusal::Timestamp {
            off_by_s: 400,
            skew: Skew::Future
        }
    );
    assert!(future.message(300).contains("in the future"));
    assert_eq!(with(stripe_header(secret, NOW - 300, body), NOW), Ok(()));
    // The signed t is part of the content: moving it breaks the signature.
    let moved =
        stripe_header(secret, NOW, body).replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
    assert_eq!(code(with(moved, NOW)), "bad_signature");
}

#[test]
fn stripe_headers_without_t_or_v1_are_malformed() {
    for bad in [
        "v1=abcd",
        "t=123",
        "t=abc,v1=00",
        "garbage",
        "t=1,v1=xyz",
        "t=-5,v1=00",
    ] {
        assert_eq!(
            code(check_with(
                Scheme::Stripe,
                &["k"],
                &[("stripe-signature", bad.into())],
                b"",
                NOW
            )),
            "malformed_signature_header",
            "{bad}"
        );
    }
    let parsed = parse_stripe(b"t=12, v1=00ff ,v1=ab").unwrap();
    assert_eq!(parsed.t, 12);
    assert_eq!(parsed.v1, vec![vec![0, 255], vec![0xab]]);
}

// --- Standard Webhooks ---

const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SW_TS: i64 = 1_614_265_330;
const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn sw_headers(sig: &str, ts: i64) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", SW_ID.into()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sig.into()),
    ]
}

#[test]
fn the_standard_webhooks_spec_vector_verifies() {
    let sw = |keys: &[&str], sig: &str, body: &[u8], now: i64| {
        check_with(
            Scheme::StandardWebhooks,
            keys,
            &sw_headers(sig, SW_TS),
            body,
            now,
        )
    };
    assert_eq!(sw(&[SW_SECRET], SW_SIG, SW_BODY, SW_TS), Ok(()));
    // Among other entries, and with asymmetric ones skipped.
    let many = format!("v1,bm9wZQ== v1a,abc {SW_SIG}");
    assert_eq!(sw(&[SW_SECRET], &many, SW_BODY, SW_TS + 10), Ok(()));
    assert_eq!(
        code(sw(&["whsec_dGVzdA=="], SW_SIG, SW_BODY, SW_TS)),
        "bad_signature"
    );
    assert_eq!(
        code(sw(&[SW_SECRET], SW_SIG, br#"{"test": 2432232315}"#, SW_TS)),
        "bad_signature"
    );
    assert_eq!(
        code(sw(&[SW_SECRET], "v1,", SW_BODY, SW_TS)),
        "bad_signature"
    );
    assert_eq!(
        code(sw(&[SW_SECRET], &SW_SIG[..20], SW_BODY, SW_TS)),
        "malformed_signature_header"
    );
    assert_eq!(
        code(sw(&[SW_SECRET], "v1a,abc", SW_BODY, SW_TS)),
        "malformed_signature_header"
    );
    assert_eq!(
        code(sw(&[SW_SECRET], SW_SIG, SW_BODY, SW_TS + 301)),
        "timestamp_outside_tolerance"
    );
    assert_eq!(
        code(sw(&[SW_SECRET], SW_SIG, SW_BODY, SW_TS - 301)),
        "timestamp_outside_tolerance"
    );
}

#[test]
fn standard_webhooks_names_each_missing_header() {
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let headers: Vec<_> = sw_headers(SW_SIG, SW_TS)
            .into_iter()
            .filter(|(n, _)| *n != missing)
            .collect();
        let refusal = check_with(
            Scheme::StandardWebhooks,
            &[SW_SECRET],
            &headers,
            SW_BODY,
            SW_TS,
        )
        .unwrap_err();
        assert_eq!(
            refusal,
            SignatureRefusal::Missing {
                header: missing.into()
            }
        );
    }
}

#[test]
fn standard_webhooks_secrets_must_be_whsec_base64() {
    assert_eq!(Scheme::StandardWebhooks.check_secret(SW_SECRET), Ok(()));
    assert_eq!(
        Scheme::StandardWebhooks.check_secret("whsec_not base64!"),
        Err(SignatureSettingError::NotWhsec)
    );
    assert_eq!(
        Scheme::Github.check_secret(""),
        Err(SignatureSettingError::EmptySecret)
    );
}

// --- several secrets, no secret ---

#[test]
fn any_active_secret_verifies_during_a_rotation() {
    let body = b"payload";
    let header = |secret: &str| {
        vec![(
            "x-hub-signature-256",
            format!("sha256={}", hex(&hmac256(secret.as_bytes(), body))),
        )]
    };
    let both = ["old-secret", "new-secret"];
    assert_eq!(
        check_with(Scheme::Github, &both, &header("old-secret"), body, NOW),
        Ok(())
    );
    assert_eq!(
        check_with(Scheme::Github, &both, &header("new-secret"), body, NOW),
        Ok(())
    );
    assert_eq!(
        code(check_with(
            Scheme::Github,
            &["new-secret"],
            &header("old-secret"),
            body,
            NOW
        )),
        "bad_signature"
    );
    assert_eq!(
        code(check_with(
            Scheme::Github,
            &[],
            &header("old-secret"),
            body,
            NOW
        )),
        "missing_signature_secret"
    );
}

// --- custom hmac ---

fn custom(input: VerifyInput) -> Scheme {
    VerifyInput {
        scheme: Some(SchemeName::Hmac),
        ..input
    }
    .scheme()
    .unwrap()
    .unwrap()
}

#[test]
fn a_custom_hmac_follows_its_header_prefix_encoding_and_template() {
    let scheme = custom(VerifyInput {
        header: Some("X-Signature".into()),
        algorithm: Some(Algorithm::Sha512),
        encoding: Some(Encoding::Base64),
        prefix: Some("sig=".into()),
        timestamp_header: Some("X-Timestamp".into()),
        signed_content: Some("{timestamp}:{body}".into()),
        ..VerifyInput::default()
    });
    let body = b"{\"a\":1}";
    let content = [format!("{NOW}:").as_bytes(), body].concat();
    let sig = b64(&mac(Algorithm::Sha512, b"k", &[&content]));
    let headers = vec![
        ("x-signature", format!("sig={sig}")),
        ("x-timestamp", NOW.to_string()),
    ];
    assert_eq!(
        check_with(scheme.clone(), &["k"], &headers, body, NOW),
        Ok(())
    );
    assert_eq!(
        code(check_with(
            scheme.clone(),
            &["k"],
            &headers,
            body,
            NOW + 1000
        )),
        "timestamp_outside_tolerance"
    );
    assert_eq!(
        code(check_with(scheme.clone(), &["k"], &headers[..1], body, NOW)),
        "missing_signature"
    );
    let unprefixed = vec![("x-signature", sig), ("x-timestamp", NOW.to_string())];
    assert_eq!(
        code(check_with(scheme, &["k"], &unprefixed, body, NOW)),
        "malformed_signature_header"
    );
}

#[test]
fn a_legacy_sha1_sender_verifies() {
    let scheme = custom(VerifyInput {
        header: Some("x-hub-signature".into()),
        algorithm: Some(Algorithm::Sha1),
        prefix: Some("sha1=".into()),
        ..VerifyInput::default()
    });
    let sig = hex(&mac(Algorithm::Sha1, b"k", &[b"body"]));
    assert_eq!(sig.len(), 40);
    let headers = vec![("x-hub-signature", format!("sha1={sig}"))];
    assert_eq!(check_with(scheme, &["k"], &headers, b"body", NOW), Ok(()));
}

#[test]
fn custom_settings_say_what_to_fix() {
    let hmac = |input: VerifyInput| {
        VerifyInput {
            scheme: Some(SchemeName::Hmac),
            ..input
        }
        .scheme()
    };
    assert_eq!(
        hmac(VerifyInput::default()),
        Err(SignatureSettingError::NoHeader)
    );
    assert!(matches!(
        hmac(VerifyInput {
            header: Some("bad header".into()),
            ..VerifyInput::default()
        }),
        Err(SignatureSettingError::BadHeader { .. })
    ));
    assert_eq!(
        hmac(VerifyInput {
            header: Some("x-sig".into()),
            signed_content: Some("{timestamp}.{body}".into()),
            ..VerifyInput::default()
        }),
        Err(SignatureSettingError::TemplateNeedsTimestamp)
    );
    assert_eq!(
        hmac(VerifyInput {
            header: Some("x-sig".into()),
            signed_content: Some("no body".into()),
            ..VerifyInput::default()
        }),
        Err(SignatureSettingError::BadTemplate)
    );
    let github_with_header = VerifyInput {
        scheme: Some(SchemeName::Github),
        header: Some("x-sig".into()),
        ..VerifyInput::default()
    };
    assert_eq!(
        github_with_header.scheme(),
        Err(SignatureSettingError::NotHmac("header"))
    );
}

// --- delivery ids ---

#[test]
fn each_scheme_finds_its_delivery_id() {
    let headers = [
        ("x-github-delivery", "gh-1"),
        ("x-shopify-webhook-id", "sh-1"),
        ("webhook-id", "sw-1"),
    ];
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_bytes())
    };
    let body = br#"{"id":"evt_123","object":"event"}"#;
    assert_eq!(
        delivery_id(&Scheme::Github, get, body).as_deref(),
        Some("gh-1")
    );
    assert_eq!(
        delivery_id(&Scheme::Shopify, get, body).as_deref(),
        Some("sh-1")
    );
    assert_eq!(
        delivery_id(&Scheme::StandardWebhooks, get, body).as_deref(),
        Some("sw-1")
    );
    assert_eq!(
        delivery_id(&Scheme::Stripe, get, body).as_deref(),
        Some("evt_123")
    );
    assert_eq!(delivery_id(&Scheme::Stripe, get, b"not json"), None);
}

#[test]
fn a_signing_secret_never_shows_in_debug() {
    let secret = SigningSecret::new(b"hunter2-secret".to_vec());
    assert!(!format!("{secret:?}").contains("hunter2"));
}

proptest! {
    #[test]
    fn no_header_input_panics_a_parser(value in proptest::collection::vec(any::<u8>(), 0..300), text in ".{0,200}") {
        let _ = parse_stripe(&value);
        let _ = parse_stripe(text.as_bytes());
        let _ = parse_standard(&value);
        let _ = parse_standard(text.as_bytes());
        let _ = decode_hex(&value);
        for scheme in [Scheme::Stripe, Scheme::Github, Scheme::Shopify, Scheme::StandardWebhooks] {
            for name in [scheme.signature_header().to_string(), "webhook-timestamp".into(), "webhook-id".into()] {
                let headers = [(name.as_str(), value.as_slice()), ("webhook-signature", text.as_bytes())];
                let get = |n: &str| headers.iter().find(|(h, _)| *h == n).map(|(_, v)| *v);
                let _ = verify(&setting(scheme.clone()), &secrets(&[SW_SECRET]), get, &value, NOW);
            }
        }
    }

    #[test]
    fn a_random_signature_never_verifies(sig in proptest::collection::vec(any::<u8>(), 0..64)) {
        let header = vec![("x-hub-signature-256", format!("sha256={}", hex(&sig)))];
        prop_assert_eq!(code(check_with(Scheme::Github, &["k"], &header, b"body", NOW)), "bad_signature");
    }
}

#[test]
fn apply_adds_removes_and_bounds_secrets() {
    let seal = |s: &str| {
        Ok(SealedSecret {
            set_at: chrono::Utc::now(),
            nonce: String::new(),
            ciphertext: s.to_owned(),
        })
    };
    let input = |json: serde_json::Value| serde_json::from_value::<VerifyInput>(json).unwrap();
    let first = apply(
        None,
        input(serde_json::json!({"scheme": "github", "secrets": ["a"]})),
        seal,
    )
    .unwrap();
    assert_eq!(first.tolerance_s, DEFAULT_TOLERANCE_S);
    let two = apply(
        Some(&first),
        input(serde_json::json!({"add_secret": "b"})),
        seal,
    )
    .unwrap();
    assert_eq!(two.secrets.len(), 2);
    assert_eq!(two.scheme, Scheme::Github, "the scheme stays");
    let rotated = apply(
        Some(&two),
        input(serde_json::json!({"remove_secret": 0})),
        seal,
    )
    .unwrap();
    assert_eq!(rotated.secrets[0].ciphertext, "b");
    assert_eq!(
        apply(
            Some(&rotated),
            input(serde_json::json!({"remove_secret": 0})),
            seal
        ),
        Err(SignatureSettingError::LastSecret)
    );
    assert_eq!(
        apply(
            Some(&rotated),
            input(serde_json::json!({"remove_secret": 3})),
            seal
        ),
        Err(SignatureSettingError::NoSuchSecret(3))
    );
    let many = serde_json::json!({"secrets": ["1", "2", "3", "4", "5", "6"]});
    assert_eq!(
        apply(Some(&rotated), input(many), seal),
        Err(SignatureSettingError::TooManySecrets)
    );
    assert_eq!(
        apply(None, input(serde_json::json!({"secrets": ["x"]})), seal),
        Err(SignatureSettingError::NoScheme)
    );
}
