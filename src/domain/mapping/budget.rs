//! What rendering one event may cost: output bytes per slot and per event,
//! and `{{#each}}` iterations per event.
//!
//! The limits in [`super::limits`] bound a template's shape; these bound
//! what a sender's data can make of it (a `{{#each}}` over a 100,000-item
//! array, or two nested over the same one). Output goes through a writer
//! that refuses past the limit, so a render stops there instead of
//! building the whole string; iterations are charged by our own `each`
//! helper (handlebars' built-in one cannot be wrapped: it is private).

use handlebars::template::{Template, TemplateElement};
use handlebars::{
    BlockContext, BlockParams, Context, Handlebars, Helper, HelperDef, HelperResult, Output,
    RenderContext, RenderError, RenderErrorReason, Renderable,
};
use serde_json::Value;
use std::cell::Cell;

/// Bytes one slot may render.
pub const MAX_SLOT_OUTPUT: usize = 64 * 1024;
/// Bytes all of one event's slots may render together.
pub const MAX_EVENT_OUTPUT: usize = 1024 * 1024;
/// The `{{#each}}` work one event may do, over all its slots: iterations
/// times the template elements each iteration renders (a block counts its
/// contents), so 100,000 iterations of a 10-element body, or 1,000 of a
/// 1,000-element one. Outside `{{#each}}` a render is linear in the
/// template, which [`super::limits`] bounds.
pub const MAX_EACH_ITERATIONS: u64 = 1_000_000;

thread_local! {
    /// Iterations left for the event being mapped on this thread (mapping
    /// one event is synchronous, on one thread).
    static ITERATIONS_LEFT: Cell<u64> = const { Cell::new(MAX_EACH_ITERATIONS) };
}

/// In the message of a render stopped by the iteration budget.
pub const ITERATIONS_MARK: &str = "element renders for this event";

/// Gives the event about to be mapped on this thread its full budget.
pub fn start_event() {
    ITERATIONS_LEFT.with(|left| left.set(MAX_EACH_ITERATIONS));
}

/// Takes `n` iterations from the budget, or refuses.
fn charge(n: usize) -> Result<(), RenderError> {
    ITERATIONS_LEFT.with(|left| {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        match left.get().checked_sub(n) {
            Some(rest) => {
                left.set(rest);
                Ok(())
            }
            None => {
                left.set(0);
                Err(RenderErrorReason::Other(format!(
                    "`{{{{#each}}}}` would run more than {MAX_EACH_ITERATIONS} {ITERATIONS_MARK}"
                ))
                .into())
            }
        }
    })
}

/// A buffer that refuses to grow past a limit (handlebars writes `&str`
/// segments into it through `render_with_context_to_write`).
pub struct BoundedOutput {
    bytes: Vec<u8>,
    limit: usize,
    /// Whether a write was refused, so the caller can say why the render failed.
    pub overflowed: bool,
}

impl BoundedOutput {
    pub fn new(limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            limit,
            overflowed: false,
        }
    }

    /// The text; handlebars writes only whole `&str`s, so it is UTF-8.
    pub fn into_string(self) -> String {
        String::from_utf8(self.bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// The message a render past the limit fails with.
pub fn too_large(limit: usize) -> String {
    format!("the rendered value would exceed {limit} bytes")
}

impl std::io::Write for &mut BoundedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            self.overflowed = true;
            return Err(std::io::Error::other(too_large(self.limit)));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `{{#each list}}...{{else}}...{{/each}}`, as handlebars' own (`this`,
/// `@index`, `@key`, `@first`, `@last`, `as |item key|`), charging each
/// iteration to the event's budget.
pub struct BudgetedEach;

impl HelperDef for BudgetedEach {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let value = h
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("each", 0))?
            .value();
        let items: Vec<(Value, &Value)> = match value {
            Value::Array(list) => list
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::from(i), v))
                .collect(),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| (Value::String(k.clone()), v))
                .collect(),
            _ => Vec::new(),
        };
        if items.is_empty() {
            return match h.inverse() {
                Some(t) => t.render(r, ctx, rc, out),
                None => Ok(()),
            };
        }
        let Some(template) = h.template() else {
            return Ok(());
        };
        charge(items.len().saturating_mul(1 + elements(template)))?;
        rc.push_block(BlockContext::new());
        let last = items.len() - 1;
        for (i, (key, item)) in items.into_iter().enumerate() {
            if let Some(block) = rc.block_mut() {
                block.set_base_value(item.clone());
                block.set_local_var("first", Value::Bool(i == 0));
                block.set_local_var("last", Value::Bool(i == last));
                block.set_local_var("index", Value::from(i));
                if value.is_object() {
                    block.set_local_var("key", key.clone());
                }
                set_block_params(block, h, &key, item)?;
            }
            template.render(r, ctx, rc, out)?;
        }
        rc.pop_block();
        Ok(())
    }
}

/// Template elements a render of `t` visits, blocks' contents included
/// (recursion bounded by the block depth limit).
fn elements(t: &Template) -> usize {
    t.elements
        .iter()
        .map(|e| match e {
            TemplateElement::HelperBlock(ht) => {
                1 + ht.template.as_ref().map_or(0, elements)
                    + ht.inverse.as_ref().map_or(0, elements)
            }
            _ => 1,
        })
        .sum()
}

fn set_block_params<'rc>(
    block: &mut BlockContext<'rc>,
    h: &Helper<'rc>,
    key: &Value,
    item: &Value,
) -> Result<(), RenderError> {
    let mut params = BlockParams::new();
    if let Some(name) = h.block_param() {
        params.add_value(name, item.clone())?;
    } else if let Some((name, key_name)) = h.block_param_pair() {
        params.add_value(name, item.clone())?;
        params.add_value(key_name, key.clone())?;
    } else {
        return Ok(());
    }
    block.set_block_params(params);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn registry() -> Handlebars<'static> {
        let mut r = Handlebars::new();
        r.register_helper("each", Box::new(BudgetedEach));
        r
    }

    fn render(tpl: &str, data: Value) -> Result<String, RenderError> {
        start_event();
        let r = registry();
        r.render_template(tpl, &data)
    }

    #[test]
    fn each_keeps_handlebars_semantics() {
        let d = json!({"a": [1, 2, 3], "o": {"x": 1, "y": 2}, "n": "N"});
        assert_eq!(
            render("{{#each a}}{{@index}}{{this}}{{#if @first}}f{{/if}}{{#if @last}}l{{/if}}{{../n}},{{/each}}", d.clone()).unwrap(),
            "01fN,12N,23lN,"
        );
        assert_eq!(
            render("{{#each o}}{{@key}}={{this}};{{/each}}", d.clone()).unwrap(),
            "x=1;y=2;"
        );
        assert_eq!(
            render("{{#each a as |v i|}}{{i}}:{{v}} {{/each}}", d.clone()).unwrap(),
            "0:1 1:2 2:3 "
        );
        assert_eq!(
            render("{{#each missing}}x{{else}}none{{/each}}", d).unwrap(),
            "none"
        );
    }

    #[test]
    fn nested_each_over_one_array_runs_out_of_budget() {
        let d = json!({"a": vec![0; 1000]});
        let err = render("{{#each a}}{{#each ../a}}{{/each}}{{/each}}", d.clone()).unwrap_err();
        assert!(err.to_string().contains(ITERATIONS_MARK), "{err}");
        // A fresh event has its budget back.
        assert!(render("{{#each a}}{{/each}}", d).is_ok());
    }

    #[test]
    fn bounded_output_refuses_past_its_limit() {
        use std::io::Write;
        let mut out = BoundedOutput::new(4);
        assert!((&mut out).write_all(b"abc").is_ok());
        assert!((&mut out).write_all(b"de").is_err());
        assert!(out.overflowed);
        assert_eq!(out.into_string(), "abc");
    }
}
