//! What a mapping's templates may cost, checked before handlebars sees them.
//!
//! Handlebars' parser, its template tree (walk, clone, drop) and its
//! renderer all recurse once per nested block, subexpression or literal, so
//! a template nesting a few thousand `{{#if}}` overflows the stack. The
//! checks here are one linear scan over the text, with no recursion, and
//! run at save time and again whenever a stored mapping is compiled (a
//! mapping stored before these limits, or written into the store by hand,
//! fails its events instead of crashing the processor).

/// Bytes of one template (one slot).
pub const MAX_TEMPLATE_BYTES: usize = 8 * 1024;
/// Bytes of all of a mapping's templates together.
pub const MAX_MAPPING_BYTES: usize = 64 * 1024;
/// Nested blocks (`{{#if}}`, `{{#each}}`, `{{else if}}` chains) in one template.
pub const MAX_BLOCK_DEPTH: usize = 16;
/// Nested `(`, `[` and `{` inside one `{{ }}` (subexpressions and literals).
pub const MAX_EXPRESSION_DEPTH: usize = 8;

/// A template refused by a limit: the code and what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn too_deep(what: &str, limit: usize) -> Self {
        Refusal {
            code: "template_too_deep",
            message: format!(
                "{what} nest more than {limit} deep; flatten the template (e.g. combine \
                 conditions with `and`/`or`, or split it into several fields)"
            ),
        }
    }
}

/// Checks one template's size and nesting.
pub fn check_template(source: &str) -> Result<(), Refusal> {
    // Depth first: it is what makes a template dangerous, so it is the
    // clearer message when a template is both deep and long.
    let depth = scan_depth(source.as_bytes());
    if depth.blocks > MAX_BLOCK_DEPTH {
        return Err(Refusal::too_deep("blocks (`{{#...}}`)", MAX_BLOCK_DEPTH));
    }
    if depth.expression > MAX_EXPRESSION_DEPTH {
        return Err(Refusal::too_deep(
            "subexpressions `( )` and literals `[ ]`/`{ }` inside `{{ }}`",
            MAX_EXPRESSION_DEPTH,
        ));
    }
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(Refusal {
            code: "template_too_large",
            message: format!(
                "the template is {} bytes; a template may be at most {MAX_TEMPLATE_BYTES} bytes",
                source.len()
            ),
        });
    }
    Ok(())
}

/// Checks the total size of a mapping's templates.
pub fn check_mapping_size(total: usize) -> Result<(), Refusal> {
    if total <= MAX_MAPPING_BYTES {
        return Ok(());
    }
    Err(Refusal {
        code: "mapping_too_large",
        message: format!(
            "the mapping's templates are {total} bytes together; at most {MAX_MAPPING_BYTES} bytes"
        ),
    })
}

/// The deepest nesting a scan found.
#[derive(Debug, Default, PartialEq, Eq)]
struct Depth {
    blocks: usize,
    expression: usize,
}

/// One pass over the bytes. It over-counts rather than under-counts
/// (escaped `\{{#` and `{{#` in raw blocks count too): a template that
/// handlebars would nest less deeply than counted is merely refused.
fn scan_depth(text: &[u8]) -> Depth {
    let mut max = Depth::default();
    // Open blocks, each with 1 + its `{{else if}}` chain (handlebars nests
    // every `else <helper>` as one more block inside the inverse).
    let mut open: Vec<usize> = Vec::new();
    let mut blocks = 0usize;
    let mut i = 0;
    while i + 1 < text.len() {
        if &text[i..i + 2] != b"{{" {
            i += 1;
            continue;
        }
        let (end, expression) = scan_mustache(text, i + 2);
        let tag = mustache_tag(&text[i + 2..end]);
        match tag {
            Tag::Open => {
                open.push(1);
                blocks += 1;
            }
            Tag::ElseChain => {
                if let Some(top) = open.last_mut() {
                    *top += 1;
                    blocks += 1;
                }
            }
            Tag::Close => blocks -= open.pop().unwrap_or(0),
            Tag::Other => {}
        }
        max.blocks = max.blocks.max(blocks);
        max.expression = max.expression.max(expression);
        i = end;
    }
    max
}

/// What kind of `{{ }}` a mustache is, for block depth.
enum Tag {
    Open,
    ElseChain,
    Close,
    Other,
}

fn mustache_tag(inner: &[u8]) -> Tag {
    let start = inner
        .iter()
        .position(|b| !matches!(b, b'{' | b'~' | b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(inner.len());
    let rest = &inner[start..];
    match rest.first() {
        Some(b'#') => Tag::Open,
        Some(b'/') => Tag::Close,
        _ if is_else_chain(rest) => Tag::ElseChain,
        _ => Tag::Other,
    }
}

/// `else if x` (and `else each`...), not a bare `else`.
fn is_else_chain(rest: &[u8]) -> bool {
    let Some(after) = rest.strip_prefix(b"else") else {
        return false;
    };
    let trimmed: Vec<&u8> = after
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| !matches!(b, b'}' | b'~'))
        .collect();
    after.first().is_some_and(u8::is_ascii_whitespace) && !trimmed.is_empty()
}

/// From just after `{{` to just after the closing `}}`: where it ends and
/// the deepest `(`/`[`/`{` nesting inside, outside quoted strings. An
/// unclosed mustache runs to the end of the text.
fn scan_mustache(text: &[u8], from: usize) -> (usize, usize) {
    let mut i = from;
    // A triple-stash `{{{`, and `{{{{raw}}}}`, open with extra braces.
    while text.get(i) == Some(&b'{') {
        i += 1;
    }
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<u8> = None;
    while i < text.len() {
        let b = text[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    max = max.max(depth);
                }
                b')' | b']' => depth = depth.saturating_sub(1),
                b'}' if depth > 0 => depth -= 1,
                b'}' if text.get(i + 1) == Some(&b'}') => {
                    let mut end = i + 2;
                    while text.get(end) == Some(&b'}') {
                        end += 1;
                    }
                    return (end, max);
                }
                _ => {}
            },
        }
        i += 1;
    }
    (text.len(), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(n: usize, open: &str, close: &str) -> String {
        format!("{}x{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn block_depth_counts_blocks_and_else_chains() {
        assert_eq!(
            scan_depth(b"{{#if a}}{{#each b}}x{{/each}}{{/if}}").blocks,
            2
        );
        assert_eq!(scan_depth(b"{{#if a}}x{{else}}y{{/if}}").blocks, 1);
        assert_eq!(
            scan_depth(b"{{#if a}}x{{else if b}}y{{else if c}}z{{/if}}{{#if d}}{{/if}}").blocks,
            3
        );
        assert_eq!(
            scan_depth(b"{{~#if a~}}{{~ #if b}}{{/if}}{{/if}}").blocks,
            2
        );
        assert_eq!(scan_depth(b"{{/if}}{{/if}}{{#if a}}").blocks, 1);
    }

    #[test]
    fn expression_depth_counts_inside_mustaches_only() {
        assert_eq!(scan_depth(b"((((( {{lower (trim (x))}}").expression, 2);
        assert_eq!(scan_depth(b"{{default a \"((((\"}}").expression, 0);
        assert_eq!(scan_depth(b"{{{a}}} {{[key with space]}}").expression, 1);
        assert_eq!(scan_depth(b"{{lookup a [[[1]]]}}").expression, 3);
    }

    #[test]
    fn limits_refuse_with_codes() {
        let deep = nested(MAX_BLOCK_DEPTH + 1, "{{#if a}}", "{{/if}}");
        assert_eq!(check_template(&deep).unwrap_err().code, "template_too_deep");
        let ok = nested(MAX_BLOCK_DEPTH, "{{#if a}}", "{{/if}}");
        assert!(check_template(&ok).is_ok());
        let subs = format!(
            "{{{{{}}}}}",
            nested(MAX_EXPRESSION_DEPTH + 1, "(lower ", ")")
        );
        assert_eq!(check_template(&subs).unwrap_err().code, "template_too_deep");
        let chain = format!("{{{{#if a}}}}{}{{{{/if}}}}", "{{else if b}}".repeat(40));
        assert_eq!(
            check_template(&chain).unwrap_err().code,
            "template_too_deep"
        );
        let long = "a".repeat(MAX_TEMPLATE_BYTES + 1);
        assert_eq!(
            check_template(&long).unwrap_err().code,
            "template_too_large"
        );
        assert_eq!(
            check_mapping_size(MAX_MAPPING_BYTES + 1).unwrap_err().code,
            "mapping_too_large"
        );
    }
}
