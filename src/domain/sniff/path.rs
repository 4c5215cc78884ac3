//! Translation between schema paths (`items[].sku`) and handlebars template
//! paths (`items.0.sku`, `[key with spaces]`).
//!
//! The schema names array elements `[]` because every element shares one
//! entry; templates must name one element. Keeping both directions here
//! means the mapper and the suggester agree on the syntax.

/// `items.0.sku` → `items[].sku`; `[key with spaces].x` → `key with spaces.x`.
///
/// The mapper uses this to warn about template paths the source never sent.
pub fn schema_path_of(template_path: &str) -> String {
    let mut out = String::with_capacity(template_path.len() + 4);
    for seg in template_segments(template_path) {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str("[]");
            continue;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(seg);
    }
    out
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

/// A schema path without `[]` as a handlebars expression: `{{customer.email}}`,
/// `{{[first name]}}`. `None` for array paths, which name no single value.
pub fn template_of(schema_path: &str) -> Option<String> {
    if schema_path.is_empty() || schema_path.contains("[]") {
        return None;
    }
    let parts: Vec<String> = schema_path.split('.').map(template_segment).collect();
    Some(format!("{{{{{}}}}}", parts.join(".")))
}

/// Wraps a segment in `[...]` unless it is a plain identifier.
fn template_segment(seg: &str) -> String {
    let plain = seg
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain && seg != "this" {
        seg.to_string()
    } else {
        format!("[{seg}]")
    }
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
        assert_eq!(schema_path_of("a.[b.c]"), "a.b.c");
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
}
