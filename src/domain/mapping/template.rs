//! One mapping slot: a static value, a bare path, or a compiled template.
//!
//! Telling them apart at compile time is what makes mapping cheap: static
//! values never touch handlebars, bare paths are a direct lookup that keeps
//! the JSON type, and only real templates are rendered (from the registry,
//! compiled once).

use super::{helpers, path};
use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::{Path, PathSeg};

/// How one slot produces its value.
#[derive(Clone, Debug)]
pub enum Slot {
    /// No `{{`: the text itself.
    Static(String),
    /// Exactly `{{some.path}}` (or `{{{some.path}}}`): read directly, JSON type kept.
    Bare(Vec<String>),
    /// Anything else: rendered by the registry under this name.
    Template(String),
}

/// What analysing a template found.
#[derive(Debug, Default)]
pub struct Analysis {
    /// Data paths read, as segments.
    pub paths: Vec<Vec<String>>,
    /// Helper names called that do not exist.
    pub unknown_helpers: Vec<String>,
    /// Partials or decorators, which mappings do not support.
    pub unsupported: Vec<String>,
}

/// Whether a string is a template at all.
pub fn is_static(source: &str) -> bool {
    !source.contains("{{")
}

/// The path of a template that is exactly one bare expression.
pub fn bare_path(template: &Template) -> Option<Vec<String>> {
    let ht = match template.elements.as_slice() {
        [TemplateElement::Expression(ht)] | [TemplateElement::HtmlExpression(ht)] => ht,
        _ => return None,
    };
    if !ht.params.is_empty() || !ht.hash.is_empty() {
        return None;
    }
    match &ht.name {
        Parameter::Name(name) if !helpers::is_known(name) => path::parse_segments(name),
        Parameter::Path(p) => named_segments(p),
        _ => None,
    }
}

/// Walks a parsed template for paths, helpers and unsupported features.
pub fn analyse(template: &Template) -> Analysis {
    let mut out = Analysis::default();
    walk_template(template, &mut out);
    out
}

fn walk_template(template: &Template, out: &mut Analysis) {
    for element in &template.elements {
        walk_element(element, out);
    }
}

fn walk_element(element: &TemplateElement, out: &mut Analysis) {
    match element {
        TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
            walk_helper(ht, false, out)
        }
        TemplateElement::HelperBlock(ht) => walk_helper(ht, true, out),
        TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_) => {
            out.unsupported.push("partials (`{{> name}}`)".to_owned())
        }
        TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
            out.unsupported.push("decorators (`{{* name}}`)".to_owned())
        }
        _ => {}
    }
}

fn walk_helper(ht: &HelperTemplate, block: bool, out: &mut Analysis) {
    let is_call = block || !ht.params.is_empty() || !ht.hash.is_empty();
    match &ht.name {
        Parameter::Name(name) if is_call && !helpers::is_known(name) => {
            out.unknown_helpers.push(name.clone())
        }
        Parameter::Name(name) if !is_call && !helpers::is_known(name) => {
            out.paths.extend(path::parse_segments(name))
        }
        other => walk_param(other, out),
    }
    ht.params.iter().for_each(|p| walk_param(p, out));
    ht.hash.values().for_each(|p| walk_param(p, out));
    if let Some(t) = &ht.template {
        walk_template(t, out);
    }
    if let Some(t) = &ht.inverse {
        walk_template(t, out);
    }
}

fn walk_param(param: &Parameter, out: &mut Analysis) {
    match param {
        Parameter::Path(p) => out.paths.extend(named_segments(p)),
        Parameter::Subexpression(sub) => walk_element(sub.as_element(), out),
        _ => {}
    }
}

/// Segments of a plain relative path; scoped paths (`../`, `@root`) are skipped.
fn named_segments(p: &Path) -> Option<Vec<String>> {
    match p {
        Path::Relative((segs, _)) if !segs.is_empty() => segs
            .iter()
            .map(|seg| match seg {
                PathSeg::Named(n) => Some(n.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Template {
        Template::compile(s).unwrap()
    }

    #[test]
    fn bare_paths_are_recognised() {
        assert_eq!(bare_path(&t("{{total}}")), Some(vec!["total".into()]));
        assert_eq!(
            bare_path(&t("{{ a.b }}")),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            bare_path(&t("{{[key with spaces]}}")),
            Some(vec!["key with spaces".into()])
        );
        assert_eq!(bare_path(&t("{{items.0.sku}}")).map(|v| v.len()), Some(3));
        assert_eq!(bare_path(&t("x{{a}}")), None);
        assert_eq!(bare_path(&t("{{lower a}}")), None);
        assert_eq!(bare_path(&t("{{{a}}}")), Some(vec!["a".into()]));
    }

    #[test]
    fn analysis_finds_paths_and_unknown_helpers() {
        let a = analyse(&t(
            "{{lower (coalesce a.b c)}} {{#if d}}{{e}}{{/if}} {{nope x}}",
        ));
        let paths: Vec<String> = a.paths.iter().map(|p| p.join(".")).collect();
        assert_eq!(paths, vec!["a.b", "c", "d", "e", "x"]);
        assert_eq!(a.unknown_helpers, vec!["nope"]);
        assert!(analyse(&t("{{> header}}")).unsupported.len() == 1);
    }
}
