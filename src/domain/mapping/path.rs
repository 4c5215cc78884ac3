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

/// The dotted form used as an output key and in `referenced_paths`, with
/// the `record.` prefix dropped since it names the same field.
pub fn dotted(segs: &[String]) -> String {
    let segs = match segs.split_first() {
        Some((first, rest)) if first == "record" && !rest.is_empty() => rest,
        _ => segs,
    };
    segs.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
