//! Bounded excerpts of JSON: what lists, searches and the live tail show of
//! a payload instead of the payload itself.
//!
//! Both builders cost O(limit), not O(input): a value is serialised through a
//! writer that refuses bytes past the limit (serde_json then stops), and a
//! stored record is only ever read up to the limit. The text is JSON as
//! serde_json writes it, so quotes and control characters are escaped; the
//! cut falls on a UTF-8 character boundary.

use serde_json::Value;
use std::io;

/// What a list shows of a payload or a mapped part of an event.
#[derive(Clone, Debug, PartialEq)]
pub struct Excerpt {
    /// At most the limit's bytes of compact JSON text.
    pub text: String,
    /// Whether the value went on past `text`.
    pub truncated: bool,
}

/// `value` as compact JSON cut to at most `max` bytes.
pub fn of_value(value: &Value, max: usize) -> Excerpt {
    let mut out = Capped {
        buf: Vec::with_capacity(max.min(4096) + 4),
        // Four bytes past the limit tell "exactly max" from "more", and
        // cover a character cut at the limit.
        cap: max.saturating_add(4),
    };
    let more = serde_json::to_writer(&mut out, value).is_err();
    of_text(&out.buf, max, more)
}

/// JSON text (e.g. a prefix of a stored record) cut to at most `max` bytes;
/// `more` says the text itself was already cut. A character split by the
/// end of the prefix is dropped, and any control character (there is none
/// in serde_json's output, but a damaged record could hold one) is escaped.
pub fn of_text(bytes: &[u8], max: usize, more: bool) -> Excerpt {
    let end = bytes.len().min(max);
    let head = &bytes[..end];
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        // `valid_up_to` is a char boundary, so this cannot fail.
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
    };
    let mut text = String::with_capacity(valid.len());
    for c in valid.chars() {
        let escaped = c.is_control().then(|| format!("\\u{:04x}", c as u32));
        let width = escaped.as_ref().map_or(c.len_utf8(), String::len);
        if text.len() + width > max {
            return Excerpt {
                text,
                truncated: true,
            };
        }
        match escaped {
            Some(escaped) => text.push_str(&escaped),
            None => text.push(c),
        }
    }
    Excerpt {
        truncated: more || valid.len() < bytes.len(),
        text,
    }
}

/// A writer that keeps at most `cap` bytes and then fails, which stops
/// serde_json's serialisation early.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
}

impl io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.cap - self.buf.len();
        if room == 0 {
            return Err(io::Error::other("excerpt full"));
        }
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn a_small_value_is_whole_and_a_large_one_is_cut() {
        let small = of_value(&json!({"a": 1}), 100);
        assert_eq!(
            small,
            Excerpt {
                text: r#"{"a":1}"#.into(),
                truncated: false
            }
        );
        let large = of_value(&json!({"a": "x".repeat(10_000)}), 100);
        assert_eq!(large.text.len(), 100);
        assert!(large.truncated);
    }

    #[test]
    fn a_value_of_exactly_the_limit_is_not_truncated() {
        let text = r#"{"a":"xyz"}"#;
        let e = of_value(&serde_json::from_str(text).unwrap(), text.len());
        assert_eq!((e.text.as_str(), e.truncated), (text, false));
    }

    #[test]
    fn the_cut_falls_on_a_character_boundary() {
        // "é" is two bytes: a limit between them drops it.
        let e = of_text("aé".as_bytes(), 2, false);
        assert_eq!((e.text.as_str(), e.truncated), ("a", true));
        let e = of_text(&"é".as_bytes()[..1], 10, true);
        assert_eq!((e.text.as_str(), e.truncated), ("", true));
    }

    #[test]
    fn control_characters_in_stored_text_are_escaped() {
        let e = of_text(b"a\0b\x1b", 100, false);
        assert_eq!(e.text, "a\\u0000b\\u001b");
    }

    /// Deep, wide and repetitive JSON values.
    fn values() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,40}".prop_map(Value::from),
            "[é😀\u{0}\u{1f}\"\\\\a]{0,30}".prop_map(Value::from),
        ];
        leaf.prop_recursive(8, 400, 40, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..40).prop_map(Value::from),
                proptest::collection::btree_map("[a-z]{1,6}", inner, 0..20)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// An excerpt is at most the limit, valid UTF-8 (a `String`), free of
        /// raw control characters, a prefix of the whole JSON text, and
        /// marked truncated exactly when it is shorter than that text.
        #[test]
        fn excerpts_are_bounded_escaped_prefixes(value in values(), max in 0usize..2048) {
            let e = of_value(&value, max);
            let whole = serde_json::to_string(&value).unwrap();
            prop_assert!(e.text.len() <= max);
            prop_assert!(!e.text.chars().any(char::is_control));
            prop_assert!(whole.starts_with(&e.text));
            prop_assert_eq!(e.truncated, e.text.len() < whole.len());
        }

        /// Any prefix of any bytes gives a bounded, control-free excerpt.
        #[test]
        fn text_excerpts_of_any_bytes_are_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..600), max in 0usize..700) {
            let e = of_text(&bytes, max, false);
            prop_assert!(e.text.len() <= max);
            prop_assert!(!e.text.chars().any(char::is_control));
        }
    }
}
