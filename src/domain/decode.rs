//! Body decoding: turns the bytes of a webhook request into one JSON value,
//! and [`Refusal`], what a hook request is refused with at any step.
//!
//! Pure functions over bytes and strings; the ingest service passes in the
//! content type, body and query, and turns a `DecodeError` into a
//! `Refusal` that the HTTP layer answers 400/415.

use crate::domain::model::Stage;
use serde_json::{Map, Value};
use std::fmt;

/// Deepest nesting accepted in a body. Deep enough for any real payload,
/// shallow enough that every later recursive walk is safe.
pub const MAX_DEPTH: usize = 64;

/// Most `key=value` pairs accepted in a form body or query string: far more
/// than any real form, few enough that building the object stays cheap.
pub const MAX_PAIRS: usize = 10_000;

/// Longest excerpt of a refused body kept in the error log.
pub const EXCERPT_CHARS: usize = 256;

/// Why a body was refused. Messages say what the sender should fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("the body is empty; send a JSON object or array")]
    Empty,
    #[error("the body is not valid UTF-8 (first bad byte at offset {0})")]
    InvalidUtf8(usize),
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the body nests deeper than {MAX_DEPTH} levels; flatten the payload")]
    TooDeep,
    #[error("unsupported content type `{0}`; send application/json, application/x-www-form-urlencoded, text/csv (a header row, then one row per record) or text/plain holding JSON or CSV")]
    UnsupportedType(String),
    #[error("the form body is not valid: {0}")]
    InvalidForm(String),
    #[error("the form or query string has more than {MAX_PAIRS} fields; send the data as a JSON body or split it")]
    TooManyPairs,
    #[error("the body is JSON but was sent as application/x-www-form-urlencoded (what `curl -d` sends); send it with `Content-Type: application/json` (curl: `--json` or `-H 'Content-Type: application/json'`)")]
    JsonSentAsForm,
}

impl DecodeError {
    /// A stable machine-readable code for the error log.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty_body",
            DecodeError::InvalidUtf8(_) => "invalid_utf8",
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::TooDeep => "too_deep",
            DecodeError::UnsupportedType(_) => "unsupported_content_type",
            DecodeError::InvalidForm(_) => "invalid_form",
            DecodeError::TooManyPairs => "too_many_fields",
            DecodeError::JsonSentAsForm => "json_sent_as_form",
        }
    }
}

impl DecodeError {
    /// The refusal the sender gets: 415 for a content type Inlet does not
    /// read, 400 otherwise, with an excerpt of the body for the error log.
    pub fn refusal(self, body: &[u8]) -> Refusal {
        let kind = match self {
            DecodeError::UnsupportedType(_) | DecodeError::JsonSentAsForm => {
                RefusalKind::UnsupportedType
            }
            _ => RefusalKind::BadInput,
        };
        Refusal::new(kind, Stage::Decode, self.code(), self.to_string()).with_excerpt(body)
    }
}

/// Why a hook request was not accepted: what the sender is answered
/// (`kind` picks the status, `code` and `message` make the body) and what
/// the error log keeps (`stage`, `code`, the message and an excerpt).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub stage: Stage,
    /// Machine-readable, stable: senders branch on it (`bad_api_key`,
    /// `too_deep`, `body_too_large`, ...).
    pub code: &'static str,
    /// What the sender should fix; for `Internal`, what failed (kept in the
    /// server's logs, never sent).
    pub message: String,
    /// A bounded, escaped excerpt of the offending body for the error log.
    pub excerpt: Option<String>,
}

/// The kinds of refusal, one per answer a sender can act on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The body or query cannot be understood (400).
    BadInput,
    /// The api key is missing or wrong (401).
    Unauthenticated,
    /// Larger than a limit allows: the body, or what it explodes into (413).
    TooLarge,
    /// A content type Inlet does not read (415).
    UnsupportedType,
    /// The body did not arrive within the body deadline (408).
    TooSlow,
    /// Inlet failed, not the sender (500): storage, a lost worker thread.
    Internal,
    /// A request with the same delivery id is being accepted (409).
    InProgress,
    /// The store could not take the records now (503 with `Retry-After`):
    /// the database is unreachable, or the commit covering them failed.
    /// Nothing was acknowledged; the sender retries.
    Unavailable,
}

impl Refusal {
    pub fn new(kind: RefusalKind, stage: Stage, code: &'static str, message: String) -> Self {
        Self {
            kind,
            stage,
            code,
            message,
            excerpt: None,
        }
    }

    /// Keeps an excerpt of the offending body for the error log.
    pub fn with_excerpt(mut self, body: &[u8]) -> Self {
        self.excerpt = excerpt(body);
        self
    }
}

/// The error log's message: the sender's message, or for an internal
/// failure what failed, marked as Inlet's own error.
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RefusalKind::Internal => write!(f, "internal error: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// The body formats Inlet understands, chosen from the content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
    /// `text/csv`: a header row, then one record per row.
    Csv,
    /// `text/plain`: JSON when it starts like JSON (`{` or `[`), else CSV
    /// (tab-separated when the header line has tabs and no comma). Senders
    /// label both that way, and neither can be mistaken for the other.
    Text,
}

/// A decoded body: a JSON value to explode (`records::explode_body`), or a
/// table whose rows are the records.
#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    Value(Value),
    Table(Table<'a>),
}

/// CSV (or tab-separated) text with a header row, borrowed from the body:
/// rows are turned into records only once the limits allow them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table<'a> {
    pub text: &'a str,
    pub delimiter: u8,
}

/// Picks the body format from a `Content-Type` value (parameters such as
/// `charset` are ignored). A missing content type is treated as JSON: many
/// senders omit it.
pub fn body_format(content_type: Option<&str>) -> Result<BodyFormat, DecodeError> {
    let Some(raw) = content_type else {
        return Ok(BodyFormat::Json);
    };
    let mime = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "" | "application/json" | "text/json" => Ok(BodyFormat::Json),
        "text/plain" => Ok(BodyFormat::Text),
        "text/csv" | "application/csv" | "text/tab-separated-values" => Ok(BodyFormat::Csv),
        "application/x-www-form-urlencoded" => Ok(BodyFormat::Form),
        m if m.starts_with("application/") && m.ends_with("+json") => Ok(BodyFormat::Json),
        _ => Err(DecodeError::UnsupportedType(truncate(raw, 100))),
    }
}

/// Decodes a request body of the given format: JSON and forms into a
/// value, CSV (and `text/plain` that is not JSON) into a [`Table`].
pub fn decode_body(format: BodyFormat, body: &[u8]) -> Result<Body<'_>, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::Empty);
    }
    let text = std::str::from_utf8(body).map_err(|e| DecodeError::InvalidUtf8(e.valid_up_to()))?;
    let value = match format {
        BodyFormat::Json => parse_json(text)?,
        BodyFormat::Text if looks_like_json(text) => parse_json(text)?,
        BodyFormat::Csv | BodyFormat::Text => return Ok(Body::Table(table(text))),
        BodyFormat::Form if is_json_text(text) => return Err(DecodeError::JsonSentAsForm),
        BodyFormat::Form => decode_pairs(text)?,
    };
    check_depth(&value)?;
    Ok(Body::Value(value))
}

/// JSON's only top-level shapes Inlet takes (an object or an array) start
/// with a character no CSV header row would.
fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['))
}

/// The table a CSV body holds. Tab-separated when its header line has a
/// tab and no comma (a spreadsheet's "copy" pastes that), else CSV.
fn table(text: &str) -> Table<'_> {
    let header = text.trim_start().lines().next().unwrap_or("");
    let delimiter = if header.contains('\t') && !header.contains(',') {
        b'\t'
    } else {
        b','
    };
    Table { text, delimiter }
}

/// Whether a form body is really a JSON document: decoded as a form it
/// would be one key holding the whole JSON text with an empty value, which
/// maps to nothing and fails only later, at mapping time. A real form body
/// never starts with `{` or `[` and parses as JSON.
fn is_json_text(text: &str) -> bool {
    let trimmed = text.trim_start();
    (trimmed.starts_with('{') || trimmed.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// Decodes a query string (GET hooks) into JSON, nesting on `__`.
pub fn decode_query(query: &str) -> Result<Value, DecodeError> {
    if query.trim().is_empty() {
        return Err(DecodeError::Empty);
    }
    let value = decode_pairs(query)?;
    check_depth(&value)?;
    Ok(value)
}

fn parse_json(text: &str) -> Result<Value, DecodeError> {
    serde_json::from_str(text).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            DecodeError::TooDeep
        } else {
            DecodeError::InvalidJson(e.to_string())
        }
    })
}

/// `a=1&b__c=2&b__d=3&t=x&t=y` → `{"a":"1","b":{"c":"2","d":"3"},"t":["x","y"]}`.
///
/// Values stay strings: a form or query string carries no types, and the
/// sniffer reports formats so marketers can see what a string holds. A key
/// that is both a value and a parent (`a=1&a__b=2`) keeps the value under
/// `a._value`, so nothing the sender sent is lost.
///
/// Nesting and the number of pairs are checked before anything is built:
/// a key of thousands of `__` levels is refused as `TooDeep` from its text
/// alone, and insertion walks down iteratively, so no input controls the
/// depth of a recursion here (nor of the recursive drop of the result).
fn decode_pairs(text: &str) -> Result<Value, DecodeError> {
    let mut root = Map::new();
    for (count, (key, value)) in form_urlencoded::parse(text.as_bytes()).enumerate() {
        if count >= MAX_PAIRS {
            return Err(DecodeError::TooManyPairs);
        }
        // The root object is level 1 and the value one more than its key's
        // segments (a repeated key adds an array level, `check_depth` sees it).
        if key
            .split("__")
            .filter(|s| !s.is_empty())
            .nth(MAX_DEPTH - 1)
            .is_some()
        {
            return Err(DecodeError::TooDeep);
        }
        let segments: Vec<&str> = key.split("__").filter(|s| !s.is_empty()).collect();
        if segments.is_empty() {
            continue;
        }
        insert_nested(&mut root, &segments, Value::String(value.into_owned()));
    }
    Ok(Value::Object(root))
}

/// Puts `value` at `segments` under `root`, creating objects on the way.
fn insert_nested(root: &mut Map<String, Value>, segments: &[&str], value: Value) {
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut map = root;
    for segment in parents {
        let entry = map
            .entry((*segment).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            let previous = entry.take();
            let mut child = Map::new();
            child.insert("_value".into(), previous);
            *entry = Value::Object(child);
        }
        map = match entry {
            Value::Object(child) => child,
            // Made an object just above.
            _ => return,
        };
    }
    match map.get_mut(*last) {
        None => {
            map.insert((*last).to_string(), value);
        }
        Some(Value::Array(items)) => items.push(value),
        Some(Value::Object(child)) => {
            child.insert("_value".into(), value);
        }
        Some(existing) => {
            let previous = existing.take();
            *existing = Value::Array(vec![previous, value]);
        }
    }
}

/// Refuses values nested deeper than `MAX_DEPTH`, without recursion.
pub fn check_depth(value: &Value) -> Result<(), DecodeError> {
    let mut stack = vec![(value, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// A bounded, printable excerpt of untrusted bytes for the error log:
/// invalid UTF-8 is replaced, control characters are escaped, and the
/// result is cut at `EXCERPT_CHARS` characters.
pub fn excerpt(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    let head = &bytes[..bytes.len().min(EXCERPT_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count >= EXCERPT_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Headers never kept nor shown to templates: they carry credentials.
const SECRET_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
];

/// Words that mark a header name as carrying a secret wherever they appear
/// (`x-hub-signature-256`, `x-credentials`, `x-pass`, `x-session-id`,
/// `x-csrf-token`, `x-jwt-assertion`, `x-private-key`, ...). Broad on
/// purpose: a header wrongly dropped costs a template one field, a secret
/// wrongly kept is shown on the dashboard.
const SECRET_WORDS: [&str; 14] = [
    "signature",
    "token",
    "secret",
    "auth",
    "key",
    "pass",
    "credential",
    "session",
    "cookie",
    "csrf",
    "xsrf",
    "jwt",
    "bearer",
    "private",
];

/// Does this (lowercase) header name carry a secret? Covers the fixed list,
/// the source's own api-key header, and anything named with a `SECRET_WORDS`
/// word.
pub fn is_secret_header(name: &str, api_key_header: Option<&str>) -> bool {
    SECRET_HEADERS.contains(&name)
        || api_key_header == Some(name)
        || SECRET_WORDS.iter().any(|word| name.contains(word))
}

/// Transport headers: meaningless to a mapping, so not stored with every event.
const TRANSPORT_HEADERS: [&str; 7] = [
    "content-length",
    "host",
    "connection",
    "accept-encoding",
    "transfer-encoding",
    "expect",
    "keep-alive",
];

/// Keeps the request headers a template may read: lowercase names, valid
/// UTF-8 values, no secrets, no transport headers, bounded in number and size.
pub fn safe_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    api_key_header: Option<&str>,
) -> Map<String, Value> {
    let mut kept = Map::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if kept.len() >= 64
            || TRANSPORT_HEADERS.contains(&name.as_str())
            || is_secret_header(&name, api_key_header)
        {
            continue;
        }
        if let Ok(value) = std::str::from_utf8(value) {
            kept.insert(name, Value::String(truncate(value, 512)));
        }
    }
    kept
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_sent_as_a_form_is_refused_with_the_content_type_to_send() {
        for body in [
            r#"{"email": "a@b.org"}"#,
            "  [1, 2]",
            r#"{"a": {"b": [1]}}"#,
        ] {
            let err = decode_body(BodyFormat::Form, body.as_bytes()).unwrap_err();
            assert_eq!(err.code(), "json_sent_as_form", "{body}");
            assert!(err.to_string().contains("application/json"), "{err}");
            assert_eq!(
                err.refusal(body.as_bytes()).kind,
                RefusalKind::UnsupportedType
            );
        }
        // A form that merely starts with a brace is still a form.
        let form = decode_body(BodyFormat::Form, b"{a=1").unwrap();
        assert_eq!(form, Body::Value(serde_json::json!({"{a": "1"})));
    }
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn json_variants_and_form_are_understood() {
        assert_eq!(
            body_format(Some("application/json; charset=utf-8")),
            Ok(BodyFormat::Json)
        );
        assert_eq!(
            body_format(Some("application/vnd.api+json")),
            Ok(BodyFormat::Json)
        );
        assert_eq!(body_format(Some("text/plain")), Ok(BodyFormat::Text));
        assert_eq!(
            body_format(Some("text/csv; charset=utf-8")),
            Ok(BodyFormat::Csv)
        );
        assert_eq!(
            body_format(Some("application/x-www-form-urlencoded")),
            Ok(BodyFormat::Form)
        );
        assert!(matches!(
            body_format(Some("application/xml")),
            Err(DecodeError::UnsupportedType(_))
        ));
    }

    #[test]
    fn csv_and_plain_text_bodies_are_tables_unless_plain_text_is_json() {
        let csv = "users.email,name\na@b.org,Ann\n";
        assert_eq!(
            decode_body(BodyFormat::Csv, csv.as_bytes()),
            Ok(Body::Table(Table {
                text: csv,
                delimiter: b','
            }))
        );
        assert_eq!(
            decode_body(BodyFormat::Text, csv.as_bytes()),
            Ok(Body::Table(Table {
                text: csv,
                delimiter: b','
            }))
        );
        let tsv = "email\tname\na@b.org\tAnn\n";
        assert!(matches!(
            decode_body(BodyFormat::Text, tsv.as_bytes()),
            Ok(Body::Table(Table {
                delimiter: b'\t',
                ..
            }))
        ));
        assert_eq!(
            decode_body(BodyFormat::Text, b" {\"a\": 1}"),
            Ok(Body::Value(json!({"a": 1})))
        );
        // Plain text that starts like JSON is held to JSON, not read as a
        // one-column CSV: the sender meant JSON.
        assert!(matches!(
            decode_body(BodyFormat::Text, b"{\"a\": "),
            Err(DecodeError::InvalidJson(_))
        ));
        // A CSV body is CSV even when it starts with a bracket.
        assert!(matches!(
            decode_body(BodyFormat::Csv, b"[a],b\n1,2"),
            Ok(Body::Table(_))
        ));
    }

    #[test]
    fn query_double_underscore_nests() {
        let v = decode_query("a__b=1&a__c=2&name=Ann%20Lee&tag=x&tag=y").unwrap();
        assert_eq!(
            v,
            json!({"a": {"b": "1", "c": "2"}, "name": "Ann Lee", "tag": ["x", "y"]})
        );
    }

    #[test]
    fn a_value_and_a_parent_with_one_name_keep_both() {
        let v = decode_query("a=1&a__b=2").unwrap();
        assert_eq!(v, json!({"a": {"_value": "1", "b": "2"}}));
    }

    #[test]
    fn malformed_bodies_are_refused_with_reasons() {
        assert_eq!(
            decode_body(BodyFormat::Json, b"  "),
            Err(DecodeError::Empty)
        );
        assert!(matches!(
            decode_body(BodyFormat::Json, b"{\"a\":"),
            Err(DecodeError::InvalidJson(_))
        ));
        assert!(matches!(
            decode_body(BodyFormat::Json, b"{\"a\":\"\xff\"}"),
            Err(DecodeError::InvalidUtf8(6))
        ));
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(
            decode_body(BodyFormat::Json, deep.as_bytes()),
            Err(DecodeError::TooDeep)
        );
        let deep_ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(decode_body(BodyFormat::Json, deep_ok.as_bytes()).is_ok());
    }

    #[test]
    fn excerpts_are_bounded_and_escaped() {
        let e = excerpt(b"line1\nline2\x00").unwrap();
        assert_eq!(e, "line1\\nline2\\u{0}");
        let long = "x".repeat(10_000);
        assert_eq!(
            excerpt(long.as_bytes()).unwrap().chars().count(),
            EXCERPT_CHARS + 1
        );
    }

    #[test]
    fn secret_headers_are_dropped() {
        let headers = [
            ("Authorization", b"Bearer x".as_slice()),
            ("X-Shop-Key", b"k".as_slice()),
            ("X-Hub-Signature-256", b"sha256=".as_slice()),
            ("X-GitHub-Event", b"push".as_slice()),
            ("Cookie", b"a=b".as_slice()),
        ];
        let kept = safe_headers(headers.into_iter(), Some("x-shop-key"));
        assert_eq!(
            kept,
            json!({"x-github-event": "push"})
                .as_object()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn a_key_nested_thousands_deep_is_refused_before_it_is_built() {
        // 8,000 levels overflowed the stack in a recursive insert.
        let query = format!("{}=1", vec!["a"; 100_000].join("__"));
        assert_eq!(decode_query(&query), Err(DecodeError::TooDeep));
        assert_eq!(
            decode_body(BodyFormat::Form, query.as_bytes()),
            Err(DecodeError::TooDeep)
        );
        // The deepest key accepted: the root, 63 levels of keys, the value.
        let ok = format!("{}=1", vec!["a"; MAX_DEPTH - 1].join("__"));
        assert!(decode_query(&ok).is_ok());
        let one_more = format!("{}=1", vec!["a"; MAX_DEPTH].join("__"));
        assert_eq!(decode_query(&one_more), Err(DecodeError::TooDeep));
        // Empty segments do not count (they are skipped when nesting).
        let hollow = format!("a{}b=1", "__".repeat(10_000));
        assert_eq!(decode_query(&hollow).unwrap(), json!({"a": {"b": "1"}}));
    }

    #[test]
    fn a_form_with_too_many_fields_is_refused() {
        let wide = "t=x&".repeat(MAX_PAIRS + 1);
        assert_eq!(decode_query(&wide), Err(DecodeError::TooManyPairs));
        assert_eq!(DecodeError::TooManyPairs.code(), "too_many_fields");
        let fits = "t=x&".repeat(MAX_PAIRS);
        assert_eq!(
            decode_query(&fits).unwrap()["t"].as_array().unwrap().len(),
            MAX_PAIRS
        );
    }

    #[test]
    fn credential_session_and_similar_headers_are_secret() {
        for name in [
            "x-credentials",
            "x-pass",
            "x-passphrase",
            "x-session-id",
            "x-cookie",
            "x-csrf-token",
            "x-xsrf",
            "x-jwt-assertion",
            "x-bearer",
            "x-private-key",
            "x-amz-security-token",
        ] {
            assert!(is_secret_header(name, None), "{name}");
        }
        for name in [
            "user-agent",
            "content-type",
            "x-github-event",
            "x-request-id",
        ] {
            assert!(!is_secret_header(name, None), "{name}");
        }
    }

    fn deep_key() -> impl Strategy<Value = String> {
        (1usize..20_000, "[a-z]{1,3}", prop::bool::ANY).prop_map(|(levels, seg, trailing)| {
            let key = vec![seg.as_str(); levels].join("__");
            if trailing {
                format!("{key}__=1&{key}=2")
            } else {
                format!("{key}=1")
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Keys of any depth: never a crash, deep ones refused, and what is
        /// accepted stays within `MAX_DEPTH`.
        #[test]
        fn deep_keys_never_crash_and_are_refused_past_the_limit(query in deep_key()) {
            match decode_query(&query) {
                Ok(v) => prop_assert!(check_depth(&v).is_ok()),
                Err(e) => prop_assert_eq!(e, DecodeError::TooDeep),
            }
        }

        /// Wide and repetitive forms: a bounded object or `too_many_fields`.
        #[test]
        fn wide_forms_are_bounded(
            keys in prop::collection::vec("[a-c]{1,2}(__[a-c]{1,2}){0,3}", 1..50),
            repeat in 1usize..400,
        ) {
            let pairs: Vec<String> = keys.iter().map(|k| format!("{k}=v")).collect();
            let body = vec![pairs.join("&"); repeat].join("&");
            match decode_body(BodyFormat::Form, body.as_bytes()) {
                Ok(Body::Value(v)) => prop_assert!(v.is_object()),
                Ok(Body::Table(_)) => prop_assert!(false, "a form is never a table"),
                Err(e) => prop_assert!(matches!(e, DecodeError::TooManyPairs | DecodeError::TooDeep)),
            }
        }
    }

    proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_body(BodyFormat::Json, &bytes);
            let _ = decode_body(BodyFormat::Form, &bytes);
            let _ = decode_body(BodyFormat::Text, &bytes);
            let _ = excerpt(&bytes);
        }

        #[test]
        fn query_strings_always_decode_to_objects(q in "[a-z_=&%0-9]{1,80}") {
            if let Ok(v) = decode_query(&q) {
                prop_assert!(v.is_object());
            }
        }
    }
}
