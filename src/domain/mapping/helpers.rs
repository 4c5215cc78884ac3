//! The helpers marketers can call in templates.
//!
//! Each helper returns a JSON value (not just text) so helpers compose as
//! subexpressions: `{{lower (coalesce traits.email context.traits.email)}}`.
//! Helpers never fail: a missing argument is treated as empty, because a
//! record that lacks a field should map to an empty slot, not crash.

use handlebars::{
    Context, Handlebars, Helper, HelperDef, JsonRender, RenderContext, RenderError, ScopedJson,
};
use serde_json::Value;

/// Our helpers, by name.
pub const CUSTOM: [&str; 10] = [
    "default", "coalesce", "lower", "upper", "trim", "json", "concat", "split", "first", "string",
];

/// Helpers handlebars registers itself (`string_helpers` is off), less
/// `log`, which would let a sender's text write lines into Inlet's log;
/// `each` is ours ([`super::budget::BudgetedEach`]).
pub const BUILTIN: [&str; 16] = [
    "if", "unless", "each", "with", "lookup", "raw", "eq", "ne", "gt", "gte", "lt", "lte", "and",
    "or", "not", "len",
];

/// Whether `name` is a helper a template may call.
pub fn is_known(name: &str) -> bool {
    CUSTOM.contains(&name) || BUILTIN.contains(&name)
}

/// A helper as a pure function of its arguments.
type HelperFn = fn(&[Value]) -> Value;

/// Registers every custom helper.
pub fn register(registry: &mut Handlebars<'static>) {
    let table: [(&str, HelperFn); 10] = [
        ("default", default),
        ("coalesce", coalesce),
        ("lower", |a| {
            map_text(a, |s| case_map(s, char::to_lowercase))
        }),
        ("upper", |a| {
            map_text(a, |s| case_map(s, char::to_uppercase))
        }),
        ("trim", |a| map_text(a, |s| s.trim_ascii().to_owned())),
        ("json", json),
        ("concat", concat),
        ("split", split),
        ("first", first),
        ("string", |a| map_text(a, str::to_owned)),
    ];
    for (name, f) in table {
        registry.register_helper(name, Box::new(ValueHelper(f)));
    }
    registry.unregister_helper("log");
    registry.register_helper("each", Box::new(super::budget::BudgetedEach));
}

/// Adapts a pure `args → value` function to handlebars.
struct ValueHelper(HelperFn);

impl HelperDef for ValueHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let args: Vec<Value> = h.params().iter().map(|p| p.value().clone()).collect();
        Ok(ScopedJson::Derived((self.0)(&args)))
    }
}

/// Empty means "nothing to map": missing, null, blank text, `[]`, `{}`.
pub fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Text the way handlebars prints a value.
fn text(value: &Value) -> String {
    value.render()
}

/// `{{default value "fallback"}}`: the value unless empty.
fn default(args: &[Value]) -> Value {
    coalesce(args)
}

/// `{{coalesce a b c}}`: the first non-empty argument.
fn coalesce(args: &[Value]) -> Value {
    args.iter()
        .find(|v| !is_empty(v))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Applies a text transform to the first argument (`lower`, `upper`, `trim`).
fn map_text(args: &[Value], f: impl Fn(&str) -> String) -> Value {
    match args.first() {
        None | Some(Value::Null) => Value::Null,
        Some(v) => Value::String(f(&text(v))),
    }
}

/// Case-maps `s` one character at a time, except that a non-ASCII character
/// whose mapping contains ASCII (the Kelvin sign → `k`, `ſ` → `S`, `İ` →
/// `i̇`) is kept as it is: a helper in an identity slot must not turn one
/// person's non-ASCII value into another's ASCII one (docs/identity.md).
fn case_map<I: Iterator<Item = char>>(s: &str, map: impl Fn(char) -> I) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() || !map(c).any(|m| m.is_ascii()) {
            out.extend(map(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// `{{json value}}`: the value as JSON text.
fn json(args: &[Value]) -> Value {
    let value = args.first().unwrap_or(&Value::Null);
    // `Value`'s `Display` is its compact JSON, the same text
    // `serde_json::to_string` gives, without an error to swallow: a `Value`
    // always serializes (string keys, finite numbers).
    Value::String(value.to_string())
}

/// `{{concat a "-" b}}`: every argument as text, joined.
fn concat(args: &[Value]) -> Value {
    Value::String(args.iter().map(text).collect())
}

/// `{{split value ","}}`: a list of trimmed parts (default separator `,`).
fn split(args: &[Value]) -> Value {
    let Some(value) = args.first().filter(|v| !v.is_null()) else {
        return Value::Null;
    };
    let sep = args.get(1).map(text).filter(|s| !s.is_empty());
    let sep = sep.as_deref().unwrap_or(",");
    Value::Array(
        text(value)
            .split(sep)
            .map(|part| Value::String(part.trim().to_owned()))
            .collect(),
    )
}

/// `{{first list}}`: the first element of a list (a non-list is itself).
fn first(args: &[Value]) -> Value {
    match args.first() {
        Some(Value::Array(items)) => items.first().cloned().unwrap_or(Value::Null),
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(tpl: &str, data: Value) -> String {
        let mut r = Handlebars::new();
        r.register_escape_fn(handlebars::no_escape);
        register(&mut r);
        r.register_template_string("t", tpl).unwrap();
        r.render("t", &data).unwrap()
    }

    #[test]
    fn default_and_coalesce_skip_empty() {
        let d = json!({"a": "", "b": "  ", "c": "x", "n": 0});
        assert_eq!(
            render(r#"{{default missing "unknown@x"}}"#, d.clone()),
            "unknown@x"
        );
        assert_eq!(render(r#"{{default a "fb"}}"#, d.clone()), "fb");
        assert_eq!(render("{{coalesce missing a b c}}", d.clone()), "x");
        assert_eq!(render("{{coalesce missing n}}", d.clone()), "0");
        assert_eq!(render("{{coalesce missing a}}", d), "");
    }

    #[test]
    fn text_helpers_compose() {
        let d = json!({"e": "  Ann@X.org ", "f": "a, b ,c", "n": 5});
        assert_eq!(render("{{lower (trim e)}}", d.clone()), "ann@x.org");
        let tricky = json!({"e": "\u{212A}im ÜBER \u{17F} \u{130}", "p": "a\u{a0}"});
        assert_eq!(
            render("{{lower e}}", tricky.clone()),
            "\u{212A}im über \u{17F} \u{130}"
        );
        assert_eq!(
            render("{{upper e}}", tricky.clone()),
            "\u{212A}IM ÜBER \u{17F} \u{130}"
        );
        assert_eq!(render("{{trim p}}", tricky), "a\u{a0}");
        assert_eq!(render("{{upper e}}", d.clone()), "  ANN@X.ORG ");
        assert_eq!(render("{{lower missing}}", d.clone()), "");
        assert_eq!(
            render(r#"{{concat "id-" n "-" missing}}"#, d.clone()),
            "id-5-"
        );
        assert_eq!(render("{{first (split f)}}", d.clone()), "a");
        assert_eq!(
            render(r#"{{json (split f ",")}}"#, d.clone()),
            r#"["a","b","c"]"#
        );
        assert_eq!(render("{{first missing}}", d), "");
    }

    #[test]
    fn json_renders_objects() {
        let d = json!({"o": {"k": [1, true, null]}});
        assert_eq!(render("{{json o}}", d.clone()), r#"{"k":[1,true,null]}"#);
        assert_eq!(render("{{json missing}}", d), "null");
    }
}
