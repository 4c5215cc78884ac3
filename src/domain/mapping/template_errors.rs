//! Messages for templates that do not compile, written for the marketer
//! who typed them rather than in the parser's terms.
//!
//! Handlebars reports a parse failure as a list of the tokens its grammar
//! expected at a position ("expected identifier, path, ..."), which says
//! nothing to someone who left out a `}}`. So the text is scanned here for
//! the mistakes people make (a mustache without its `}}`, a stray `}}`, a
//! block never closed or closed with the wrong name, an empty `{{}}`), and
//! only when none is found does the message fall back to the parser's
//! position, quoting the text there. One linear pass, no recursion; any
//! string gives a message and every message names the field.

use super::helpers;

/// Longest quote of the template a message shows.
const QUOTE_CHARS: usize = 40;

/// Why `source` (the slot `field`) did not parse. `parser_at` is where
/// handlebars stopped (line, column), for the fallback message.
pub fn unreadable(field: &str, source: &str, parser_at: Option<(usize, usize)>) -> String {
    if let Some(problem) = first_problem(source) {
        return format!("In `{field}`, {problem}");
    }
    match parser_at {
        Some((line, column)) => format!(
            "In `{field}`, line {line}: the template cannot be read at `{}`; check its braces \
             `{{{{ }}}}`, quotes and parentheses",
            quote(&text_at(source, line, column))
        ),
        None => format!(
            "In `{field}`: `{}` is not a valid template; check its braces `{{{{ }}}}`, quotes and \
             parentheses",
            quote(source)
        ),
    }
}

/// A `}}` outside every `{{ }}`: handlebars keeps it as text, so
/// `{customer.email}}` (one brace short) would map the literal text. Checked
/// before a slot is compiled, static slots included, since without a `{{`
/// such a slot is taken as a static value.
pub fn stray_close_message(field: &str, source: &str) -> Option<String> {
    stray_close(source).map(|line| format!("In `{field}`, {}", stray_problem(line)))
}

fn stray_problem(line: usize) -> String {
    format!(
        "line {line}: a stray `}}}}` with no `{{{{` before it; remove it or add the opening `{{{{`"
    )
}

/// The message for a call of a helper that does not exist, quoting the
/// call and suggesting the closest helper when one is close.
pub fn unknown_helper(field: &str, source: &str, name: &str) -> String {
    let call = helper_call(source, name).unwrap_or_else(|| name.to_string());
    let hint = match closest_helper(name) {
        Some(known) => format!("did you mean `{known}`? "),
        None => String::new(),
    };
    format!(
        "In `{field}`: `{}`: there is no helper `{}`; {hint}the helpers are: {}",
        quote(&call),
        quote(name),
        helpers::CUSTOM
            .iter()
            .chain(helpers::BUILTIN.iter())
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A known helper a mistyped `name` most likely meant: one or two edits
/// away (one for short names, where two edits make any word another), or
/// the start of it (`lowercase` for `lower`, `lenght` for `len`).
fn closest_helper(name: &str) -> Option<&'static str> {
    let allowed = if name.chars().count() <= 4 { 1 } else { 2 };
    let known = helpers::CUSTOM.iter().chain(helpers::BUILTIN.iter());
    let by_edits = known
        .clone()
        .map(|h| (strsim::levenshtein(name, h), *h))
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, h)| h);
    by_edits.or_else(|| {
        known
            .filter(|h| h.len() >= 3 && (name.starts_with(*h) || h.starts_with(name)))
            .max_by_key(|h| h.len())
            .copied()
    })
}

/// The `{{ ... }}` (or `( ... )`) in which `name` is called.
fn helper_call(source: &str, name: &str) -> Option<String> {
    let mustaches = mustaches(source);
    for m in mustaches.iter().filter(|m| !m.comment) {
        let words = m
            .inner
            .trim_start_matches(['{', '~', '#', ' ', '\t', '\r', '\n']);
        if first_word(words) == name || m.inner.contains(&format!("({name}")) {
            return Some(m.text.to_string());
        }
    }
    None
}

/// A `{{ ... }}` found by the scan.
struct Mustache<'a> {
    /// From `{{` to its closing `}}` (or the end of what it ran over).
    text: &'a str,
    /// Between the braces.
    inner: &'a str,
    /// Byte offset of its `{{`.
    start: usize,
    /// 1-based line of its `{{`.
    line: usize,
    closed: bool,
    /// `{{! ... }}` or `{{!-- ... --}}`: skipped, but not outside text.
    comment: bool,
}

/// What is wrong with `source`, starting with its line: the first
/// unclosed mustache, stray `}}` or mismatched block close, else the
/// innermost block never closed.
fn first_problem(source: &str) -> Option<String> {
    if let Some(line) = stray_close(source) {
        return Some(stray_problem(line));
    }
    let mut open: Vec<(String, String, usize)> = Vec::new();
    for m in mustaches(source).into_iter().filter(|m| !m.comment) {
        if !m.closed {
            return Some(format!(
                "line {}: `{}` is missing its closing `}}}}`",
                m.line,
                quote(m.text.trim_end())
            ));
        }
        let inner = m.inner.trim_matches(['{', '}', '~', ' ', '\t', '\r', '\n']);
        if inner.is_empty() {
            return Some(format!(
                "line {}: `{}` is empty; put a field inside, like `{{{{customer.email}}}}`",
                m.line, m.text
            ));
        }
        // `{{{{raw}}}}` opens a raw block as `#` opens any other.
        let raw_open = m.inner.starts_with("{{") && !inner.starts_with('/');
        if let Some(rest) = inner.strip_prefix('#').or(raw_open.then_some(inner)) {
            let name = first_word(rest.trim_start_matches(['>', '*', ' ', '\t']));
            open.push((name.to_string(), m.text.to_string(), m.line));
        } else if let Some(rest) = inner.strip_prefix('/') {
            let name = first_word(rest.trim_start());
            match open.pop() {
                None => {
                    return Some(format!(
                        "line {}: `{}` closes a block that was never opened; remove it, or open \
                         the block with `{{{{#{} ...}}}}` before it",
                        m.line,
                        quote(m.text),
                        quote(name)
                    ))
                }
                Some((opened, opened_text, opened_line)) if opened != name => {
                    return Some(format!(
                        "line {}: `{}` closes `{}` (line {opened_line}), which needs \
                         `{{{{/{}}}}}`; close the inner block first",
                        m.line,
                        quote(m.text),
                        quote(&opened_text),
                        quote(&opened)
                    ))
                }
                Some(_) => {}
            }
        }
    }
    open.pop().map(|(name, text, line)| {
        format!(
            "line {line}: `{}` is never closed with `{{{{/{}}}}}`",
            quote(&text),
            quote(&name)
        )
    })
}

/// Every `{{ ... }}` of the text in order, comments and `\{{` skipped.
/// A mustache that meets another `{{` or the end before its `}}` is the
/// last one returned, unclosed: what follows cannot be read reliably.
fn mustaches(source: &str) -> Vec<Mustache<'_>> {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(offset) = source[i..].find("{{") {
        let start = i + offset;
        if start > 0 && bytes[start - 1] == b'\\' {
            i = start + 2;
            continue;
        }
        let line = line_of(source, start);
        if source[start..].starts_with("{{!") {
            let end_marker = if source[start..].starts_with("{{!--") {
                "--}}"
            } else {
                "}}"
            };
            match source[start + 3..].find(end_marker) {
                Some(e) => {
                    let end = start + 3 + e + end_marker.len();
                    found.push(Mustache {
                        start,
                        text: &source[start..end],
                        inner: "",
                        line,
                        closed: true,
                        comment: true,
                    });
                    i = end;
                    continue;
                }
                None => {
                    found.push(unclosed(source, start, line));
                    break;
                }
            }
        }
        match closing(source, start + 2) {
            Some((inner_end, end)) => {
                found.push(Mustache {
                    start,
                    text: &source[start..end],
                    inner: &source[start + 2..inner_end],
                    line,
                    closed: true,
                    comment: false,
                });
                i = end;
            }
            None => {
                found.push(unclosed(source, start, line));
                break;
            }
        }
    }
    found
}

/// An unclosed mustache, quoted up to the next `{{` or the end of its line.
fn unclosed(source: &str, start: usize, line: usize) -> Mustache<'_> {
    let rest = &source[start..];
    // Past the opening braces (`{{{` too), so the quote shows what follows.
    let opened = 2 + rest[2..].bytes().take_while(|b| *b == b'{').count();
    let end = rest[opened..]
        .find(['\n', '{'])
        .map_or(rest.len(), |e| e + opened)
        .min(rest.len());
    Mustache {
        start,
        text: &rest[..end],
        inner: &rest[2.min(end)..end],
        line,
        closed: false,
        comment: false,
    }
}

/// From just after `{{`: where the inner text ends and the mustache ends
/// (after its last `}`), outside quotes and segment literals; `None` when another `{{` or the
/// end comes first.
fn closing(source: &str, from: usize) -> Option<(usize, usize)> {
    let bytes = source.as_bytes();
    let mut i = from;
    while bytes.get(i) == Some(&b'{') {
        i += 1;
    }
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                // A segment literal (`{{[users.email]}}`, `{{[}}]}}`) names a
                // key as written: braces inside it are the key's, not the
                // template's.
                b'[' => quote = Some(b']'),
                b'{' if bytes.get(i + 1) == Some(&b'{') => return None,
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    let mut end = i + 2;
                    while bytes.get(end) == Some(&b'}') {
                        end += 1;
                    }
                    return Some((i, end));
                }
                _ => {}
            },
        }
        i += 1;
    }
    None
}

/// The line of the first `}}` that is outside every mustache.
fn stray_close(source: &str) -> Option<usize> {
    let mut outside_from = 0;
    for m in mustaches(source) {
        let start = m.start;
        if let Some(at) = source[outside_from..start].find("}}") {
            return Some(line_of(source, outside_from + at));
        }
        if !m.closed {
            return None;
        }
        outside_from = start + m.text.len();
    }
    source[outside_from..]
        .find("}}")
        .map(|at| line_of(source, outside_from + at))
}

fn line_of(source: &str, byte: usize) -> usize {
    1 + source.as_bytes()[..byte.min(source.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// The first word: a helper or block name.
fn first_word(text: &str) -> &str {
    let end = text
        .find(|c: char| c.is_whitespace() || matches!(c, '}' | '~' | '(' | ')'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The text at a parser position (1-based line; column 1- or 0-based,
/// whichever handlebars gives: the quote starts a character early at worst).
fn text_at(source: &str, line: usize, column: usize) -> String {
    let text = source.lines().nth(line.saturating_sub(1)).unwrap_or(source);
    text.chars().skip(column.saturating_sub(1)).collect()
}

/// A bounded quote without backticks (they would end the code span).
fn quote(text: &str) -> String {
    let clean: String = text.replace('`', "'");
    match clean.char_indices().nth(QUOTE_CHARS) {
        Some((i, _)) => format!("{}…", &clean[..i]),
        None => clean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use handlebars::Template;
    use proptest::prelude::*;

    /// The message the compiler would give for `source` in `email`.
    fn message(source: &str) -> String {
        let err = Template::compile(source).expect_err("does not parse");
        unreadable("email", source, err.pos())
    }

    #[test]
    fn a_mustache_without_its_closing_braces_is_named_with_its_line() {
        assert_eq!(
            message("{{customer.email"),
            "In `email`, line 1: `{{customer.email` is missing its closing `}}`"
        );
        assert_eq!(
            message("Hi\n{{first_name}} {{last_name"),
            "In `email`, line 2: `{{last_name` is missing its closing `}}`"
        );
        assert!(message("{{a {{b}}").contains("`{{a` is missing its closing `}}`"));
        assert!(message("{{{raw.html").contains("`{{{raw.html` is missing its closing `}}`"));
    }

    #[test]
    fn blocks_never_closed_or_closed_wrongly_say_which_close_is_needed() {
        assert_eq!(
            message("{{#if x}}yes"),
            "In `email`, line 1: `{{#if x}}` is never closed with `{{/if}}`"
        );
        let m = message("{{#if x}}{{#each y}}z{{/if}}{{/each}}");
        assert!(
            m.contains("`{{/if}}` closes `{{#each y}}` (line 1), which needs `{{/each}}`"),
            "{m}"
        );
        let m = message("x{{/if}}");
        assert!(m.contains("closes a block that was never opened"), "{m}");
    }

    #[test]
    fn stray_and_empty_braces_are_named() {
        let m = stray_close_message("email", "{customer.email}}").expect("stray");
        assert_eq!(
            m,
            "In `email`, line 1: a stray `}}` with no `{{` before it; remove it or add the opening `{{`"
        );
        assert!(
            stray_close_message("email", "{{a}}\n{{b}} x}}").is_some_and(|m| m.contains("line 2"))
        );
        assert_eq!(
            stray_close_message("email", "{{{a}}} {{!-- }} --}} {{b}}"),
            None
        );
        let m = message("{{}}");
        assert!(m.contains("`{{}}` is empty"), "{m}");
    }

    #[test]
    fn braces_inside_a_segment_literal_are_the_keys_not_the_templates() {
        // Keys named `}}` or `{{` are reachable as `{{[}}]}}` / `{{[{{]}}`
        // (`mapping::template_path` writes them so); neither is a stray close.
        assert_eq!(stray_close_message("email", "{{[}}]}}"), None);
        assert_eq!(stray_close_message("email", "{{lower [a}}b]}}"), None);
        assert_eq!(stray_close_message("email", "{{[{{]}}"), None);
        assert!(stray_close_message("email", "{{[a]}} b}}").is_some());
    }

    #[test]
    fn other_parse_failures_quote_the_text_where_the_parser_stopped() {
        let m = message("{{lower (a}}");
        assert!(m.starts_with("In `email`, line 1:"), "{m}");
        assert!(!m.contains("expected"), "no token lists: {m}");
    }

    #[test]
    fn an_unknown_helper_is_quoted_with_the_closest_helper() {
        let m = unknown_helper("email", "{{lowercas x}}", "lowercas");
        assert!(
            m.starts_with("In `email`: `{{lowercas x}}`: there is no helper `lowercas`; did you mean `lower`?"),
            "{m}"
        );
        let m = unknown_helper("traits.plan", "{{default (uper plan) \"x\"}}", "uper");
        assert!(m.contains("did you mean `upper`?"), "{m}");
        let m = unknown_helper("email", "{{nope x}}", "nope");
        assert!(!m.contains("did you mean"), "{m}");
        assert!(m.contains("coalesce"), "{m}");
    }

    proptest! {
        /// Any text and any parser position: a message, naming the field.
        #[test]
        fn any_template_text_gets_a_message_naming_the_field(
            source in "[{}#/a-z !~\"'()\\n\\\\-]{0,60}",
            field in "[a-z_.]{1,12}",
            at in proptest::option::of((0usize..5, 0usize..80)),
        ) {
            let m = unreadable(&field, &source, at);
            let named = format!("`{field}`");
            prop_assert!(m.contains(&named), "{}", m);
            let name = first_word(&source).to_string();
            let m = unknown_helper(&field, &source, &name);
            prop_assert!(m.contains(&named), "{}", m);
        }

        /// Arbitrary unicode too (multi-byte characters next to braces).
        #[test]
        fn unicode_never_panics(source in "\\PC{0,40}", at in proptest::option::of((0usize..3, 0usize..50))) {
            prop_assert!(unreadable("f", &source, at).contains("`f`"));
        }
    }
}
