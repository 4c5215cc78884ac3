//! Translation between schema paths (`items[].sku`, `[users.email]`) and
//! handlebars template paths (`items.0.sku`, `[key with spaces]`).
//!
//! The schema names array elements `[]` because every element shares one
//! entry; templates must name one element. A key that holds a `.` (Looker
//! names columns `users.email`) is written `[users.email]` in a schema path,
//! so it stays apart from a `users` object holding `email`. Keeping both
//! directions here means the mapper and the suggester agree on the syntax.

use crate::domain::mapping::template_path;

/// One step of a schema path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// An object key, unwrapped (`users.email` for `[users.email]`).
    Key(&'a str),
    /// Every element of an array (`[]`).
    Each,
}

/// Appends one object key to a schema path being built: `[...]` around a
/// key with `.`, `[` or `]` in it, bare otherwise. Runs for every value the
/// sniffer walks, so it only scans the key.
pub fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    if key.contains(['.', '[', ']']) {
        path.push('[');
        path.push_str(key);
        path.push(']');
    } else {
        path.push_str(key);
    }
}

/// The steps of a schema path, the inverse of building it with [`push_key`]
/// and `[]`. A bracketed key ends at the first `]` followed by `.`, `[` or
/// the end, so only keys holding `].` or `][` are split wrongly (no template
/// can name those anyway).
pub fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("[]") {
            out.push(Step::Each);
            rest = after;
        } else if let Some(inner) = rest.strip_prefix('[') {
            let end = bracket_end(inner);
            out.push(Step::Key(&inner[..end]));
            rest = inner.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Step::Key(&rest[..end]));
            rest = &rest[end..];
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    out
}

/// Where a bracketed key's closing `]` is in `inner` (the text after `[`).
fn bracket_end(inner: &str) -> usize {
    let bytes = inner.as_bytes();
    bytes
        .iter()
        .enumerate()
        .position(|(i, b)| *b == b']' && matches!(bytes.get(i + 1), None | Some(b'.') | Some(b'[')))
        .unwrap_or(inner.len())
}

/// The last object key of a schema path (`email` for `customer.email`,
/// `users.email` for `[users.email]`, `sku` for `items[].sku`).
pub fn last_key(path: &str) -> &str {
    steps(path)
        .into_iter()
        .rev()
        .find_map(|s| match s {
            Step::Key(k) => Some(k),
            Step::Each => None,
        })
        .unwrap_or("")
}

/// The schema path of a field read by template segments (array indexes
/// as digits): `items.0.sku` → `items[].sku`, `[users.email]` → `[users.email]`.
pub fn schema_path_of_segments(segs: &[String]) -> String {
    let mut out = String::new();
    for seg in segs {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str("[]");
        } else {
            push_key(&mut out, seg);
        }
    }
    out
}

/// `items.0.sku` → `items[].sku`; `[key with spaces].x` → `key with spaces.x`;
/// `order.[line.items]` → `order.[line.items]`.
///
/// The mapper uses this to warn about template paths the source never sent.
pub fn schema_path_of(template_path: &str) -> String {
    let segs: Vec<String> = template_segments(template_path)
        .into_iter()
        .map(str::to_owned)
        .collect();
    schema_path_of_segments(&segs)
}

/// Splits a handlebars path on `.` (and `/`), keeping `[...]` literals whole
/// and unwrapped.
fn template_segments(path: &str) -> Vec<&str> {
    let mut segs = Vec::new();
    let mut rest = path.trim();
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            match inner.find(']') {
                Some(end) => {
                    segs.push(&inner[..end]);
                    rest = &inner[end + 1..];
                }
                None => {
                    segs.push(inner);
                    rest = "";
                }
            }
        } else {
            let end = rest.find(['.', '/', '[']).unwrap_or(rest.len());
            if end > 0 {
                segs.push(&rest[..end]);
            }
            rest = &rest[end..];
        }
        rest = rest.trim_start_matches(['.', '/']);
    }
    segs
}

/// A schema path without `[]` as the exact template to type:
/// `{{customer.email}}`, `{{[first name]}}`, `{{[users.email]}}`. `None` for
/// array paths, which name no single value, and for keys no template can
/// name (see [`template_path`]).
pub fn template_of(schema_path: &str) -> Option<String> {
    let segs: Option<Vec<String>> = steps(schema_path)
        .into_iter()
        .map(|s| match s {
            Step::Key(k) => Some(k.to_owned()),
            Step::Each => None,
        })
        .collect();
    template_path(&segs?).map(|p| format!("{{{{{p}}}}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_segments_become_array_marks() {
        assert_eq!(schema_path_of("items.0.sku"), "items[].sku");
        assert_eq!(schema_path_of("a.1.2.b"), "a[][].b");
        assert_eq!(schema_path_of("items.[0].sku"), "items[].sku");
        assert_eq!(schema_path_of("0.x"), "[].x");
    }

    #[test]
    fn bracketed_literals_are_unwrapped() {
        assert_eq!(schema_path_of("[key with spaces].x"), "key with spaces.x");
        assert_eq!(schema_path_of("a.[b.c]"), "a.[b.c]");
        assert_eq!(schema_path_of("customer.email"), "customer.email");
    }

    #[test]
    fn templates_wrap_special_segments() {
        assert_eq!(
            template_of("customer.email").as_deref(),
            Some("{{customer.email}}")
        );
        assert_eq!(
            template_of("first name").as_deref(),
            Some("{{[first name]}}")
        );
        assert_eq!(template_of("items[].sku"), None);
        assert_eq!(schema_path_of("[first name]"), "first name");
    }

    #[test]
    fn a_dotted_key_and_a_nested_path_are_different_schema_paths() {
        let mut schema = crate::domain::sniff::Schema::default();
        let mut buf = String::new();
        let record = serde_json::json!({
            "users.email": "a@x.org",
            "users": {"email": "b@x.org"},
            "order": {"line.items": [{"sku": "A"}]}
        });
        schema.observe(&record, chrono::Utc::now(), &mut buf);
        let mut paths: Vec<&str> = schema.paths().collect();
        paths.sort();
        assert_eq!(
            paths,
            vec![
                "[users.email]",
                "order",
                "order.[line.items]",
                "order.[line.items][]",
                "order.[line.items][].sku",
                "users",
                "users.email"
            ]
        );
        assert_eq!(
            template_of("[users.email]").as_deref(),
            Some("{{[users.email]}}")
        );
        assert_eq!(
            template_of("users.email").as_deref(),
            Some("{{users.email}}")
        );
        assert_eq!(
            template_of("order.[line.items]").as_deref(),
            Some("{{order.[line.items]}}")
        );
        assert_eq!(template_of("order.[line.items][].sku"), None);
        assert_eq!(
            template_of("headers").as_deref(),
            Some("{{record.headers}}")
        );
    }

    #[test]
    fn steps_undo_push_key() {
        for keys in [
            vec!["a", "b"],
            vec!["users.email"],
            vec!["a[b", "c"],
            vec!["x", "a]b", "y"],
            vec!["first name", "v.1.2"],
        ] {
            let mut path = String::new();
            for k in &keys {
                push_key(&mut path, k);
            }
            let back: Vec<Step<'_>> = keys.iter().map(|k| Step::Key(k)).collect();
            assert_eq!(steps(&path), back, "{path}");
        }
        assert_eq!(
            steps("items[].[a.b][]"),
            vec![Step::Key("items"), Step::Each, Step::Key("a.b"), Step::Each]
        );
        assert_eq!(last_key("items[].[api.key]"), "api.key");
        assert_eq!(schema_path_of("[users.email]"), "[users.email]");
        assert_eq!(schema_path_of("users.email"), "users.email");
    }
}
