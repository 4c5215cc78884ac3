//! Path lookup against the template view of one record.
//!
//! Bare-path templates (`{{total}}`) and `properties` path lists are read
//! here directly instead of going through handlebars: that keeps the JSON
//! type of the value (a number stays a number) and skips building the
//! handlebars context when no slot needs it.

use crate::domain::model::RecordContext;
use handlebars::{Path, PathSeg};
use serde_json::Value;

/// Splits a handlebars path (`a.b`, `items.0.sku`, `[key with spaces]`,
/// `a/b`, `this.a`) into its named segments.
///
/// Returns `None` for paths that need handlebars' own scoping rules
/// (`@root`, `../`, `@index`): those are only valid inside templates.
pub fn parse_segments(raw: &str) -> Option<Vec<String>> {
    match Path::parse(raw.trim()).ok()? {
        Path::Relative((segs, _)) => segs
            .into_iter()
            .map(|seg| match seg {
                PathSeg::Named(name) => Some(name),
                _ => None,
            })
            .collect(),
        Path::Local(_) => None,
    }
}

/// Resolves segments against the view a template sees: `envelope.*`,
/// `headers.*`, `record.*`, or else a field of the record.
///
/// The three roots are reserved: they always mean the request, never a
/// record field, so a record's own `headers` field is `{{record.headers}}`.
/// Header names are matched lowercase, as they are stored.
pub fn lookup<'a>(ctx: &RecordContext<'a>, segs: &[String]) -> Option<&'a Value> {
    let (first, rest) = segs.split_first()?;
    match first.as_str() {
        "envelope" => descend(ctx.envelope?, rest),
        "headers" => {
            let (name, rest) = rest.split_first()?;
            descend(ctx.headers.get(&name.to_ascii_lowercase())?, rest)
        }
        "record" => descend(ctx.record, rest),
        _ => descend(ctx.record, segs),
    }
}

/// Walks object keys and array indexes.
fn descend<'a>(mut value: &'a Value, segs: &[String]) -> Option<&'a Value> {
    for seg in segs {
        value = match value {
            Value::Object(map) => map.get(seg)?,
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// The path to type in a template for a record field given by its segments
/// (array indexes as digits): `customer.email`, `[users.email]`,
/// `order.[line.items]`, `items.0.sku`, `record.headers`. Wrap it in `{{ }}`
/// (see [`expression`]) or pass it to a helper (`{{lower [users.email]}}`).
///
/// Segments are written bare when handlebars reads them as one name and in
/// a `[...]` literal otherwise, so a key with a dot stays one key. The first
/// segment gets a `record.` prefix when it alone would mean something else:
/// a reserved root (`envelope`, `headers`, `record`), a helper, a keyword,
/// or a literal in helper-argument position (`true`, `1`, `[1]`).
///
/// `None` for a field no template can name: an empty key, a key with `]`
/// (a `[...]` literal cannot hold one), or `this` (handlebars drops it).
pub fn template_path(segs: &[String]) -> Option<String> {
    let (first, _) = segs.split_first()?;
    let mut parts = Vec::with_capacity(segs.len() + 1);
    if needs_record_prefix(first) {
        parts.push("record".to_owned());
    }
    for seg in segs {
        parts.push(template_segment(seg)?);
    }
    Some(parts.join("."))
}

/// [`template_path`] as a whole bare template: `{{[users.email]}}`.
pub fn expression(segs: &[String]) -> Option<String> {
    template_path(segs).map(|p| format!("{{{{{p}}}}}"))
}

/// One segment as written in a path; `None` when it cannot be written.
fn template_segment(seg: &str) -> Option<String> {
    if seg.is_empty() || seg.contains(']') || seg == "this" {
        return None;
    }
    Some(if is_plain(seg) {
        seg.to_owned()
    } else {
        format!("[{seg}]")
    })
}

/// A segment handlebars reads as one name unbracketed: an identifier
/// (letters, digits, `_`, not starting with a digit) or an array index.
fn is_plain(seg: &str) -> bool {
    let identifier = seg
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    identifier || seg.bytes().all(|b| b.is_ascii_digit())
}

/// Whether a first segment must be reached as `record.<it>` (see [`template_path`]).
fn needs_record_prefix(first: &str) -> bool {
    let reserved = matches!(first, "envelope" | "headers" | "record" | "as" | "else");
    // In helper-argument position handlebars tries a JSON literal before a
    // path, so `true`, `12` or a bracketed `[1]` would be read as values.
    let literal = if is_plain(first) {
        serde_json::from_str::<Value>(first).is_ok()
    } else {
        serde_json::from_str::<Value>(&format!("[{first}]")).is_ok()
    };
    reserved || literal || super::helpers::is_known(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Map};

    #[test]
    fn parses_handlebars_path_forms() {
        assert_eq!(parse_segments("a.b").unwrap(), vec!["a", "b"]);
        assert_eq!(
            parse_segments("items.0.sku").unwrap(),
            vec!["items", "0", "sku"]
        );
        assert_eq!(
            parse_segments("[key with spaces]").unwrap(),
            vec!["key with spaces"]
        );
        assert_eq!(parse_segments("a/b").unwrap(), vec!["a", "b"]);
        assert!(parse_segments("../a").is_none());
        assert!(parse_segments("a b").is_none());
    }

    #[test]
    fn reserved_roots_reach_envelope_headers_and_record() {
        let record = json!({"headers": "mine", "a": [1, {"b": 2}]});
        let envelope = json!({"plan": {"title": "T"}});
        let mut headers = Map::new();
        headers.insert("x-github-event".into(), json!("push"));
        let ctx = RecordContext {
            record: &record,
            envelope: Some(&envelope),
            headers: &headers,
            received_at: chrono::Utc::now(),
        };
        let seg = |s: &str| parse_segments(s).unwrap();
        assert_eq!(lookup(&ctx, &seg("a.1.b")), Some(&json!(2)));
        assert_eq!(lookup(&ctx, &seg("envelope.plan.title")), Some(&json!("T")));
        assert_eq!(
            lookup(&ctx, &seg("headers.x-github-event")),
            Some(&json!("push"))
        );
        assert_eq!(lookup(&ctx, &seg("record.headers")), Some(&json!("mine")));
        assert_eq!(lookup(&ctx, &seg("a.9")), None);
    }

    fn segs(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn template_paths_bracket_only_what_needs_it() {
        let t = |parts: &[&str]| template_path(&segs(parts));
        assert_eq!(t(&["customer", "email"]).as_deref(), Some("customer.email"));
        assert_eq!(t(&["users.email"]).as_deref(), Some("[users.email]"));
        assert_eq!(
            t(&["order", "line.items"]).as_deref(),
            Some("order.[line.items]")
        );
        assert_eq!(t(&["items", "0", "sku"]).as_deref(), Some("items.0.sku"));
        assert_eq!(t(&["first name"]).as_deref(), Some("[first name]"));
        assert_eq!(t(&["headers"]).as_deref(), Some("record.headers"));
        assert_eq!(t(&["lower"]).as_deref(), Some("record.lower"));
        assert_eq!(t(&["true"]).as_deref(), Some("record.true"));
        assert_eq!(t(&["1"]).as_deref(), Some("record.1"));
        assert_eq!(t(&["a", "true"]).as_deref(), Some("a.true"));
        assert_eq!(t(&["a]b"]), None);
        assert_eq!(t(&[""]), None);
        assert_eq!(t(&[]), None);
        assert_eq!(
            expression(&segs(&["users.email"])).as_deref(),
            Some("{{[users.email]}}")
        );
    }

    #[test]
    fn bracket_segments_keep_a_dotted_key_whole() {
        assert_eq!(
            parse_segments("[users.email]").unwrap(),
            vec!["users.email"]
        );
        assert_eq!(
            parse_segments("order.[line.items].0").unwrap(),
            vec!["order", "line.items", "0"]
        );
    }

    /// The mapper itself (bare fast path, and a helper's argument through
    /// handlebars) reads `[a.b]` as the key `a.b`, not `a` → `b`.
    #[test]
    fn the_mapper_reads_bracketed_dotted_keys() {
        let spec = serde_json::from_value(json!({
            "event_name": "x",
            "email": "{{[users.email]}}",
            "external_id": "{{lower [users.id]}}",
            "properties": {"nested": "{{users.email}}", "line": "{{order.[line.items].0}}"}
        }))
        .unwrap();
        let m = crate::domain::mapping::CompiledMapping::compile(spec, 1).unwrap();
        let record = json!({
            "users.email": "Ann@Example.org", "users.id": "U-7",
            "order": {"line.items": ["sku-1"]}
        });
        let headers = Map::new();
        let ctx = RecordContext {
            record: &record,
            envelope: None,
            headers: &headers,
            received_at: chrono::Utc::now(),
        };
        let e = m.apply(&ctx).unwrap().event;
        assert_eq!(e.email.as_deref(), Some("ann@example.org"));
        assert_eq!(e.external_id.as_deref(), Some("u-7"));
        assert_eq!(e.properties.get("nested"), None, "{:?}", e.properties);
        assert_eq!(e.properties["line"], json!("sku-1"));
    }

    fn key() -> impl Strategy<Value = String> {
        // Dots, spaces, brackets, braces, slashes, words handlebars knows
        // (`this`, `true`, `lower`, `headers`) and non-ASCII letters.
        prop_oneof![
            "[a-zA-Z0-9 ._\\-\\[\\]{}/@#$:é]{1,10}",
            Just("this".to_string()),
            Just("true".to_string()),
            Just("lower".to_string()),
            Just("headers".to_string()),
            Just("12".to_string()),
            Just("users.email".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The template made for a key path reads back exactly that value,
        /// bare and as a helper's argument; where none is made, the key is
        /// one no handlebars path can name.
        #[test]
        fn the_template_for_a_field_reads_that_field(path in prop::collection::vec(key(), 1..4)) {
            let Some(tp) = template_path(&path) else {
                prop_assert!(path.iter().any(|k| k.is_empty() || k.contains(']') || k == "this"));
                return Ok(());
            };
            let mut record = json!("the value");
            for k in path.iter().rev() {
                record = json!({ k.clone(): record });
            }
            // A sibling on the dotted reading, so a wrong split reads something else.
            if let Some(obj) = record.as_object_mut() {
                obj.entry(path[0].split('.').next().unwrap_or("x").to_string())
                    .or_insert(json!({"decoy": 1}));
            }
            let spec = serde_json::from_value(json!({
                "event_name": "x",
                "external_id": format!("{{{{{tp}}}}}"),
                "properties": {"helper": format!("{{{{default {tp} \"missing\"}}}}")}
            }))
            .unwrap();
            let m = crate::domain::mapping::CompiledMapping::compile(spec, 1)
                .map_err(|e| TestCaseError::fail(format!("{tp}: {e}")))?;
            let headers = Map::new();
            let ctx = RecordContext {
                record: &record,
                envelope: None,
                headers: &headers,
                received_at: chrono::Utc::now(),
            };
            let e = m.apply(&ctx).map_err(|e| TestCaseError::fail(format!("{tp}: {e}")))?.event;
            prop_assert_eq!(e.external_id.as_deref(), Some("the value"), "{}", tp);
            prop_assert_eq!(&e.properties["helper"], &json!("the value"), "{}", tp);
        }
    }
}
