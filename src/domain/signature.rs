//! Signature verification: a source's `verify` setting, the parsing of each
//! provider's signature header, and the check of the HMAC over the raw body.
//!
//! Pure: the caller passes the request's headers, its raw bytes, the clock
//! and the opened secrets (`domain::sealed` keeps them encrypted at rest).
//! Every comparison is constant-time and checks lengths (`subtle`'s slice
//! `ct_eq` is false for slices of different lengths), so an empty or
//! truncated signature never matches. The signature is checked before the
//! timestamp: a forged request learns "bad signature" and nothing about the
//! clock, and a validly signed but stale one is told how stale it is.

use crate::domain::sealed::SealedSecret;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Seconds a signed timestamp may differ from the clock, either way, when
/// the setting does not say (Stripe's and Standard Webhooks' own default).
pub const DEFAULT_TOLERANCE_S: u64 = 300;
/// How long an accepted delivery id is remembered, when the setting does
/// not say: providers retry for up to a day or three, most within hours.
pub const DEFAULT_REDELIVERY_WINDOW_S: u64 = 86_400;
/// Most secrets active at once: two cover a rotation; a few more cover a
/// source fed by several accounts.
pub const MAX_SECRETS: usize = 5;
/// A signature header longer than this is refused unread (real ones hold a
/// few signatures of at most 128 characters each).
const MAX_HEADER_BYTES: usize = 4096;

/// The scheme names as the API spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemeName {
    Stripe,
    Github,
    Shopify,
    StandardWebhooks,
    Hmac,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Sha256,
    Sha512,
    /// Only for legacy senders that still sign with it.
    Sha1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Hex,
    Base64,
}

/// Any other sender's HMAC: which header, how it is computed and written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomHmac {
    /// Lowercase header name.
    pub header: String,
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    /// Written before the signature, such as `sha256=`.
    pub prefix: Option<String>,
    /// A header carrying the unix time the sender signed at.
    pub timestamp_header: Option<String>,
    /// What is signed: `{body}` once, and `{timestamp}` when a timestamp
    /// header is set. Default `{body}`.
    pub signed_content: Option<String>,
    /// A header carrying the sender's delivery id (for redelivery).
    pub delivery_id_header: Option<String>,
}

/// How a source's senders sign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    Stripe,
    Github,
    Shopify,
    StandardWebhooks,
    Hmac(CustomHmac),
}

impl Scheme {
    pub fn name(&self) -> SchemeName {
        match self {
            Scheme::Stripe => SchemeName::Stripe,
            Scheme::Github => SchemeName::Github,
            Scheme::Shopify => SchemeName::Shopify,
            Scheme::StandardWebhooks => SchemeName::StandardWebhooks,
            Scheme::Hmac(_) => SchemeName::Hmac,
        }
    }

    /// The header that carries the signature.
    pub fn signature_header(&self) -> &str {
        match self {
            Scheme::Stripe => "stripe-signature",
            Scheme::Github => "x-hub-signature-256",
            Scheme::Shopify => "x-shopify-hmac-sha256",
            Scheme::StandardWebhooks => "webhook-signature",
            Scheme::Hmac(custom) => &custom.header,
        }
    }

    /// Whether the scheme signs a timestamp (and so has a tolerance).
    pub fn has_timestamp(&self) -> bool {
        match self {
            Scheme::Stripe | Scheme::StandardWebhooks => true,
            Scheme::Github | Scheme::Shopify => false,
            Scheme::Hmac(custom) => custom.timestamp_header.is_some(),
        }
    }

    /// Whether a secret has the form the scheme keys with; the message
    /// says what to fix.
    pub fn check_secret(&self, secret: &str) -> Result<(), SignatureSettingError> {
        if secret.is_empty() {
            return Err(SignatureSettingError::EmptySecret);
        }
        if secret.len() > 1024 {
            return Err(SignatureSettingError::LongSecret);
        }
        if matches!(self, Scheme::StandardWebhooks) && standard_key(secret.as_bytes()).is_none() {
            return Err(SignatureSettingError::NotWhsec);
        }
        Ok(())
    }
}

/// A source's verification setting as stored: the scheme, its secrets
/// (sealed), the tolerance and the redelivery window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verify {
    pub scheme: Scheme,
    /// Oldest first. Empty: a preset's scheme still waiting for its secret;
    /// every request is refused until one is set.
    pub secrets: Vec<SealedSecret>,
    pub tolerance_s: u64,
    pub redelivery_window_s: u64,
}

/// A secret in clear, only in memory while a request is checked or a
/// setting sealed. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// A refused `verify` setting; each message says what to fix.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SignatureSettingError {
    #[error("verify.scheme is required (stripe, github, shopify, standard_webhooks or hmac)")]
    NoScheme,
    #[error("verify.header is required for the hmac scheme (the header your sender puts the signature in)")]
    NoHeader,
    #[error(
        "verify.{field} `{value}` is not a valid HTTP header name (letters, digits and - only)"
    )]
    BadHeader { field: &'static str, value: String },
    #[error("verify.signed_content must contain `{{body}}` exactly once")]
    BadTemplate,
    #[error("verify.signed_content uses `{{timestamp}}`, so verify.timestamp_header must name the header that carries it")]
    TemplateNeedsTimestamp,
    #[error("a signing secret must not be empty")]
    EmptySecret,
    #[error("a signing secret is longer than 1024 characters")]
    LongSecret,
    #[error("a standard_webhooks secret is `whsec_` followed by base64 (as the sender shows it)")]
    NotWhsec,
    #[error("at most {MAX_SECRETS} secrets may be active at once; remove an old one first")]
    TooManySecrets,
    #[error("verify.remove_secret {0} is not a secret of this source (they are numbered from 0, oldest first)")]
    NoSuchSecret(usize),
    #[error("verify.tolerance_s must be between 1 and 86400")]
    BadTolerance,
    #[error("verify.redelivery_window_s must be at most 2592000 (30 days)")]
    BadWindow,
    #[error("verify.{0} only applies to the hmac scheme")]
    NotHmac(&'static str),
    #[error("the signing secret could not be encrypted")]
    Seal,
    #[error("this would remove the last signing secret; to stop verifying signatures set verify to null")]
    LastSecret,
}

/// Which way a signed timestamp is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skew {
    /// Signed longer ago than the tolerance: a replay, or a sender's queue.
    Past,
    /// Signed in the future: a sender's clock runs ahead.
    Future,
}

/// Why a request's signature was refused. The messages name the header and
/// what is wrong with it, never a secret or the signature expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureRefusal {
    /// The scheme is set but no secret yet (a preset's source).
    NoSecret,
    Missing {
        header: String,
    },
    Malformed {
        header: String,
        why: &'static str,
    },
    Bad {
        header: String,
    },
    Timestamp {
        off_by_s: u64,
        skew: Skew,
    },
}

impl SignatureRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            SignatureRefusal::NoSecret => "missing_signature_secret",
            SignatureRefusal::Missing { .. } => "missing_signature",
            SignatureRefusal::Malformed { .. } => "malformed_signature_header",
            SignatureRefusal::Bad { .. } => "bad_signature",
            SignatureRefusal::Timestamp { .. } => "timestamp_outside_tolerance",
        }
    }

    pub fn message(&self, tolerance_s: u64) -> String {
        match self {
            SignatureRefusal::NoSecret => "this source verifies signatures but has no signing secret yet: set one on the source (verify.add_secret) before sending".into(),
            SignatureRefusal::Missing { header } => {
                format!("this source requires a signed request: the `{header}` header is missing")
            }
            SignatureRefusal::Malformed { header, why } => {
                format!("the `{header}` header cannot be read: {why}")
            }
            SignatureRefusal::Bad { header } => format!(
                "the `{header}` header's signature does not match the raw body signed with any of this source's secrets"
            ),
            SignatureRefusal::Timestamp { off_by_s, skew } => match skew {
                Skew::Past => format!(
                    "the signed timestamp is {off_by_s} s in the past, beyond the tolerance of {tolerance_s} s (a replay, or a delivery held too long)"
                ),
                Skew::Future => format!(
                    "the signed timestamp is {off_by_s} s in the future, beyond the tolerance of {tolerance_s} s (the sender's clock runs ahead)"
                ),
            },
        }
    }
}

/// Checks a request against `verify` with the opened `secrets`. `header`
/// returns a header's raw value by its lowercase name; `now` is unix seconds.
pub fn verify<'h>(
    verify: &Verify,
    secrets: &[SigningSecret],
    header: impl Fn(&str) -> Option<&'h [u8]>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureRefusal> {
    if secrets.is_empty() {
        return Err(SignatureRefusal::NoSecret);
    }
    let signed = match &verify.scheme {
        Scheme::Stripe => stripe(&header, secrets, body)?,
        Scheme::Github => {
            let name = "x-hub-signature-256";
            let value = required(&header, name)?;
            let hex = strip(value, "sha256=")
                .ok_or_else(|| malformed(name, "it must start with `sha256=`"))?;
            let presented = decode_hex(hex).ok_or_else(|| malformed(name, "not hex"))?;
            check(Algorithm::Sha256, secrets, &[body], &[presented], name)?;
            None
        }
        Scheme::Shopify => {
            let name = "x-shopify-hmac-sha256";
            let value = required(&header, name)?;
            let presented = decode_base64(value).ok_or_else(|| malformed(name, "not base64"))?;
            check(Algorithm::Sha256, secrets, &[body], &[presented], name)?;
            None
        }
        Scheme::StandardWebhooks => standard(&header, secrets, body)?,
        Scheme::Hmac(custom) => custom_hmac(custom, &header, secrets, body)?,
    };
    match signed {
        Some(at) => within_tolerance(at, now, verify.tolerance_s),
        None => Ok(()),
    }
}

/// The sender's id for this delivery, if the scheme carries one: a retry
/// of a lost 202 carries the same. Read only after `verify` passed.
pub fn delivery_id<'h>(
    scheme: &Scheme,
    header: impl Fn(&str) -> Option<&'h [u8]>,
    body: &[u8],
) -> Option<String> {
    let from_header = |name: &str| {
        header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 200)
            .map(str::to_owned)
    };
    match scheme {
        // Stripe's retries carry the same event, and so the same `id`.
        Scheme::Stripe => {
            #[derive(Deserialize)]
            struct Event {
                id: Option<String>,
            }
            serde_json::from_slice::<Event>(body)
                .ok()
                .and_then(|e| e.id)
                .filter(|id| !id.is_empty() && id.len() <= 200)
        }
        Scheme::Github => from_header("x-github-delivery"),
        Scheme::Shopify => from_header("x-shopify-webhook-id"),
        Scheme::StandardWebhooks => from_header("webhook-id"),
        Scheme::Hmac(custom) => custom.delivery_id_header.as_deref().and_then(from_header),
    }
}

fn stripe<'h>(
    header: &impl Fn(&str) -> Option<&'h [u8]>,
    secrets: &[SigningSecret],
    body: &[u8],
) -> Result<Option<i64>, SignatureRefusal> {
    let name = "stripe-signature";
    let parsed = parse_stripe(required(header, name)?)?;
    let t = parsed.t.to_string();
    check(
        Algorithm::Sha256,
        secrets,
        &[t.as_bytes(), b".", body],
        &parsed.v1,
        name,
    )?;
    Ok(Some(parsed.t))
}

/// `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]` (other schemes' entries,
/// such as `v0`, are ignored as Stripe's libraries do).
#[derive(Debug, PartialEq)]
pub struct StripeHeader {
    pub t: i64,
    pub v1: Vec<Vec<u8>>,
}

pub fn parse_stripe(value: &[u8]) -> Result<StripeHeader, SignatureRefusal> {
    let name = "stripe-signature";
    let text = std::str::from_utf8(value).map_err(|_| malformed(name, "not text"))?;
    let mut t = None;
    let mut v1 = Vec::new();
    for item in text.split(',') {
        let (key, val) = item
            .trim()
            .split_once('=')
            .ok_or_else(|| malformed(name, "each entry is `key=value`"))?;
        match key {
            "t" => {
                t = Some(parse_unix(val).ok_or_else(|| malformed(name, "t is not a unix time"))?)
            }
            "v1" => {
                v1.push(decode_hex(val.as_bytes()).ok_or_else(|| malformed(name, "v1 is not hex"))?)
            }
            _ => {}
        }
    }
    let t = t.ok_or_else(|| malformed(name, "no `t=` timestamp"))?;
    if v1.is_empty() {
        return Err(malformed(name, "no `v1=` signature"));
    }
    Ok(StripeHeader { t, v1 })
}

fn standard<'h>(
    header: &impl Fn(&str) -> Option<&'h [u8]>,
    secrets: &[SigningSecret],
    body: &[u8],
) -> Result<Option<i64>, SignatureRefusal> {
    let id = required(header, "webhook-id")?;
    let ts_raw = required(header, "webhook-timestamp")?;
    let ts = std::str::from_utf8(ts_raw)
        .ok()
        .and_then(parse_unix)
        .ok_or_else(|| malformed("webhook-timestamp", "not a unix time"))?;
    let presented = parse_standard(required(header, "webhook-signature")?)?;
    // The key is the secret's base64 after `whsec_`; checked when it was set.
    let keys: Vec<SigningSecret> = secrets
        .iter()
        .filter_map(|s| standard_key(s.expose()))
        .map(SigningSecret)
        .collect();
    check(
        Algorithm::Sha256,
        &keys,
        &[id, b".", ts_raw, b".", body],
        &presented,
        "webhook-signature",
    )?;
    Ok(Some(ts))
}

/// `webhook-signature`: space-separated `v1,<base64>` entries; entries of
/// other versions (`v1a,…` asymmetric) are skipped.
pub fn parse_standard(value: &[u8]) -> Result<Vec<Vec<u8>>, SignatureRefusal> {
    let name = "webhook-signature";
    let text = std::str::from_utf8(value).map_err(|_| malformed(name, "not text"))?;
    let mut out = Vec::new();
    for entry in text.split(' ').filter(|e| !e.is_empty()) {
        let (version, sig) = entry
            .split_once(',')
            .ok_or_else(|| malformed(name, "each entry is `v1,<base64>`"))?;
        if version == "v1" {
            out.push(
                decode_base64(sig.as_bytes())
                    .ok_or_else(|| malformed(name, "a v1 signature is not base64"))?,
            );
        }
    }
    if out.is_empty() {
        return Err(malformed(name, "no `v1,` signature"));
    }
    Ok(out)
}

/// A Standard Webhooks key: the base64 after `whsec_` (the prefix is
/// optional, as the reference libraries accept).
fn standard_key(secret: &[u8]) -> Option<Vec<u8>> {
    let b64 = strip(secret, "whsec_").unwrap_or(secret);
    decode_base64(b64).filter(|k| !k.is_empty())
}

fn custom_hmac<'h>(
    custom: &CustomHmac,
    header: &impl Fn(&str) -> Option<&'h [u8]>,
    secrets: &[SigningSecret],
    body: &[u8],
) -> Result<Option<i64>, SignatureRefusal> {
    let name = custom.header.as_str();
    let value = required(header, name)?;
    let value = match &custom.prefix {
        Some(prefix) => strip(value, prefix)
            .ok_or_else(|| malformed(name, "it does not start with the expected prefix"))?,
        None => value,
    };
    let presented = match custom.encoding {
        Encoding::Hex => decode_hex(value).ok_or_else(|| malformed(name, "not hex"))?,
        Encoding::Base64 => decode_base64(value).ok_or_else(|| malformed(name, "not base64"))?,
    };
    let timestamp = match &custom.timestamp_header {
        Some(ts_name) => {
            let raw = required(header, ts_name)?;
            let at = std::str::from_utf8(raw)
                .ok()
                .and_then(parse_unix)
                .ok_or_else(|| malformed(ts_name, "not a unix time"))?;
            Some((raw, at))
        }
        None => None,
    };
    let template = custom.signed_content.as_deref().unwrap_or("{body}");
    let (before, after) = template.split_once("{body}").unwrap_or(("", ""));
    let fill = |part: &str| -> Vec<u8> {
        match timestamp {
            Some((raw, _)) => part
                .replace("{timestamp}", &String::from_utf8_lossy(raw))
                .into_bytes(),
            None => part.as_bytes().to_vec(),
        }
    };
    let (before, after) = (fill(before), fill(after));
    check(
        custom.algorithm,
        secrets,
        &[&before, body, &after],
        &[presented],
        name,
    )?;
    Ok(timestamp.map(|(_, at)| at))
}

/// Passes when one secret's MAC over `parts` equals one presented
/// signature: constant-time per comparison, lengths checked.
fn check(
    algorithm: Algorithm,
    secrets: &[SigningSecret],
    parts: &[&[u8]],
    presented: &[Vec<u8>],
    header: &str,
) -> Result<(), SignatureRefusal> {
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        let expected = mac(algorithm, secret.expose(), parts);
        for sig in presented {
            matched |= expected.as_slice().ct_eq(sig.as_slice());
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureRefusal::Bad {
            header: header.to_owned(),
        })
    }
}

fn mac(algorithm: Algorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        // HMAC takes keys of any length: `new_from_slice` cannot fail.
        let Ok(mut m) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
            return Vec::new();
        };
        for part in parts {
            m.update(part);
        }
        m.finalize().into_bytes().to_vec()
    }
    match algorithm {
        Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts),
        Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, parts),
        Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts),
    }
}

fn within_tolerance(signed_at: i64, now: i64, tolerance_s: u64) -> Result<(), SignatureRefusal> {
    let diff = now.saturating_sub(signed_at);
    let off_by_s = diff.unsigned_abs();
    if off_by_s <= tolerance_s {
        return Ok(());
    }
    let skew = if diff > 0 { Skew::Past } else { Skew::Future };
    Err(SignatureRefusal::Timestamp { off_by_s, skew })
}

fn required<'h>(
    header: &impl Fn(&str) -> Option<&'h [u8]>,
    name: &str,
) -> Result<&'h [u8], SignatureRefusal> {
    let value = header(name)
        .map(trim_ascii)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| SignatureRefusal::Missing {
            header: name.to_owned(),
        })?;
    if value.len() > MAX_HEADER_BYTES {
        return Err(malformed(name, "it is too long"));
    }
    Ok(value)
}

fn malformed(header: &str, why: &'static str) -> SignatureRefusal {
    SignatureRefusal::Malformed {
        header: header.to_owned(),
        why,
    }
}

fn trim_ascii(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

fn strip<'a>(value: &'a [u8], prefix: &str) -> Option<&'a [u8]> {
    value.strip_prefix(prefix.as_bytes())
}

/// A unix time in seconds: digits only (no sign, no fraction), so one
/// header cannot be read two ways.
fn parse_unix(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn decode_hex(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    text.chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// The setting as an API or form gives it: every field optional, so one
/// type serves create (a whole setting) and PATCH (a change to one).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyInput {
    pub scheme: Option<SchemeName>,
    pub header: Option<String>,
    pub algorithm: Option<Algorithm>,
    pub encoding: Option<Encoding>,
    pub prefix: Option<String>,
    pub timestamp_header: Option<String>,
    pub signed_content: Option<String>,
    pub delivery_id_header: Option<String>,
    /// Replaces every secret.
    pub secrets: Option<Vec<String>>,
    /// Adds one secret beside the others (a rotation's first step).
    pub add_secret: Option<String>,
    /// Removes one secret by its position, oldest first (the last step).
    pub remove_secret: Option<usize>,
    pub tolerance_s: Option<u64>,
    pub redelivery_window_s: Option<u64>,
}

impl VerifyInput {
    /// The scheme this input names (with its hmac fields), or `None` when
    /// it leaves the scheme as it is.
    pub fn scheme(&self) -> Result<Option<Scheme>, SignatureSettingError> {
        let Some(name) = self.scheme else {
            return match self.hmac_only_field() {
                Some(field) => Err(SignatureSettingError::NotHmac(field)),
                None => Ok(None),
            };
        };
        let scheme = match name {
            SchemeName::Stripe => Scheme::Stripe,
            SchemeName::Github => Scheme::Github,
            SchemeName::Shopify => Scheme::Shopify,
            SchemeName::StandardWebhooks => Scheme::StandardWebhooks,
            SchemeName::Hmac => return self.custom().map(|c| Some(Scheme::Hmac(c))),
        };
        match self.hmac_only_field() {
            Some(field) => Err(SignatureSettingError::NotHmac(field)),
            None => Ok(Some(scheme)),
        }
    }

    fn hmac_only_field(&self) -> Option<&'static str> {
        [
            ("header", self.header.is_some()),
            ("algorithm", self.algorithm.is_some()),
            ("encoding", self.encoding.is_some()),
            ("prefix", self.prefix.is_some()),
            ("timestamp_header", self.timestamp_header.is_some()),
            ("signed_content", self.signed_content.is_some()),
            ("delivery_id_header", self.delivery_id_header.is_some()),
        ]
        .into_iter()
        .find(|(_, set)| *set)
        .map(|(field, _)| field)
    }

    fn custom(&self) -> Result<CustomHmac, SignatureSettingError> {
        let header = self
            .header
            .as_deref()
            .ok_or(SignatureSettingError::NoHeader)?;
        let header = header_name("header", header)?;
        let optional_header = |field: &'static str, value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| header_name(field, v))
                .transpose()
        };
        let timestamp_header = optional_header("timestamp_header", &self.timestamp_header)?;
        let delivery_id_header = optional_header("delivery_id_header", &self.delivery_id_header)?;
        let signed_content = self.signed_content.clone().filter(|t| !t.is_empty());
        if let Some(template) = &signed_content {
            if template.matches("{body}").count() != 1 {
                return Err(SignatureSettingError::BadTemplate);
            }
            if template.contains("{timestamp}") && timestamp_header.is_none() {
                return Err(SignatureSettingError::TemplateNeedsTimestamp);
            }
        }
        Ok(CustomHmac {
            header,
            algorithm: self.algorithm.unwrap_or(Algorithm::Sha256),
            encoding: self.encoding.unwrap_or(Encoding::Hex),
            prefix: self.prefix.clone().filter(|p| !p.is_empty()),
            timestamp_header,
            signed_content,
            delivery_id_header,
        })
    }

    /// The tolerance and window this input sets, checked.
    pub fn limits(&self) -> Result<(Option<u64>, Option<u64>), SignatureSettingError> {
        if self.tolerance_s.is_some_and(|t| t == 0 || t > 86_400) {
            return Err(SignatureSettingError::BadTolerance);
        }
        if self.redelivery_window_s.is_some_and(|w| w > 30 * 86_400) {
            return Err(SignatureSettingError::BadWindow);
        }
        Ok((self.tolerance_s, self.redelivery_window_s))
    }
}

/// The setting after `input` is applied to `current` (none yet: the
/// input must name a scheme). Secrets are checked for the scheme and
/// sealed by `seal`: `secrets` replaces them all, then `remove_secret`
/// drops one by position, then `add_secret` appends one.
pub fn apply(
    current: Option<&Verify>,
    input: VerifyInput,
    mut seal: impl FnMut(&str) -> Result<SealedSecret, SignatureSettingError>,
) -> Result<Verify, SignatureSettingError> {
    let scheme = match input.scheme()? {
        Some(scheme) => scheme,
        None => current
            .map(|c| c.scheme.clone())
            .ok_or(SignatureSettingError::NoScheme)?,
    };
    let (tolerance_s, window_s) = input.limits()?;
    let mut secrets = match input.secrets {
        Some(list) => list
            .iter()
            .map(|secret| {
                scheme.check_secret(secret)?;
                seal(secret)
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => current.map(|c| c.secrets.clone()).unwrap_or_default(),
    };
    if let Some(index) = input.remove_secret {
        if index >= secrets.len() {
            return Err(SignatureSettingError::NoSuchSecret(index));
        }
        secrets.remove(index);
    }
    if let Some(secret) = &input.add_secret {
        scheme.check_secret(secret)?;
        secrets.push(seal(secret)?);
    }
    // Removing every secret would make the source refuse all requests,
    // which is never what a rotation means.
    if secrets.is_empty() && current.is_some_and(|c| !c.secrets.is_empty()) {
        return Err(SignatureSettingError::LastSecret);
    }
    if secrets.len() > MAX_SECRETS {
        return Err(SignatureSettingError::TooManySecrets);
    }
    Ok(Verify {
        scheme,
        secrets,
        tolerance_s: tolerance_s
            .or(current.map(|c| c.tolerance_s))
            .unwrap_or(DEFAULT_TOLERANCE_S),
        redelivery_window_s: window_s
            .or(current.map(|c| c.redelivery_window_s))
            .unwrap_or(DEFAULT_REDELIVERY_WINDOW_S),
    })
}

/// A preset's setting: its scheme with no secret yet, so the source
/// refuses every request (`missing_signature_secret`) until one is set.
pub fn awaiting_secret(scheme: Scheme) -> Verify {
    Verify {
        scheme,
        secrets: Vec::new(),
        tolerance_s: DEFAULT_TOLERANCE_S,
        redelivery_window_s: DEFAULT_REDELIVERY_WINDOW_S,
    }
}

/// The setting as the API and the dashboard show it: never a secret,
/// only when each was set. No hint either (no last characters, no
/// fingerprint): for a short operator-chosen secret, four characters or a
/// hash are a head start on guessing it, and `set_at` already tells which
/// secret is which during a rotation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerifyView {
    pub scheme: SchemeName,
    /// The header a sender must sign into.
    pub signature_header: String,
    /// The hmac scheme's settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac: Option<CustomHmac>,
    /// Oldest first; `remove_secret` takes a position in this list.
    pub secrets: Vec<SecretView>,
    /// No secret is set: every request is refused until one is.
    pub secret_required: bool,
    /// Only for schemes that sign a timestamp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerance_s: Option<u64>,
    pub redelivery_window_s: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SecretView {
    pub set_at: chrono::DateTime<chrono::Utc>,
}

impl VerifyView {
    pub fn of(verify: &Verify) -> Self {
        Self {
            scheme: verify.scheme.name(),
            signature_header: verify.scheme.signature_header().to_owned(),
            hmac: match &verify.scheme {
                Scheme::Hmac(custom) => Some(custom.clone()),
                _ => None,
            },
            secrets: verify
                .secrets
                .iter()
                .map(|s| SecretView { set_at: s.set_at })
                .collect(),
            secret_required: verify.secrets.is_empty(),
            tolerance_s: verify.scheme.has_timestamp().then_some(verify.tolerance_s),
            redelivery_window_s: verify.redelivery_window_s,
        }
    }
}

fn header_name(field: &'static str, value: &str) -> Result<String, SignatureSettingError> {
    let name = value.trim().to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(name)
    } else {
        Err(SignatureSettingError::BadHeader {
            field,
            value: value.to_owned(),
        })
    }
}

#[cfg(test)]
#[path = "signature_tests.rs"]
mod tests;
