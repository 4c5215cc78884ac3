//! Identifier normalisation and the blocklist.
//!
//! Sources send placeholders (`"null"`, `"anonymous"`, `"0"`) where they have
//! no identity. Taking those literally would merge every anonymous visitor of
//! a site into one giant profile, so they are dropped here, before lookup.

use super::types::{IdentKind, Identifiers, Refusal, RefusalReason};
use std::collections::BTreeSet;

/// Longest identifier accepted, in characters.
pub const MAX_IDENTIFIER_CHARS: usize = 200;

/// Placeholder values that never become identifiers (compared lowercased).
const DEFAULT_BLOCKED: &[&str] = &[
    "anonymous",
    "guest",
    "distinct_id",
    "id",
    "not_authenticated",
    "email",
    "undefined",
    "null",
    "none",
    "nil",
    "n/a",
    "na",
    "unknown",
    "invalid",
    "true",
    "false",
    "nan",
    "[object object]",
    "<nil>",
    "[]",
    "{}",
];

/// Values refused as identifiers. `Default` is the built-in list; a source
/// can add its own placeholders with [`Blocklist::with_extra`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocklist {
    values: BTreeSet<String>,
}

impl Default for Blocklist {
    fn default() -> Self {
        Self {
            values: DEFAULT_BLOCKED.iter().map(|v| (*v).to_owned()).collect(),
        }
    }
}

impl Blocklist {
    /// The default list plus `extra` (trimmed, case-insensitive).
    pub fn with_extra<I, S>(extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Self::default();
        for v in extra {
            let v = v.as_ref().trim().to_lowercase();
            if !v.is_empty() {
                list.values.insert(v);
            }
        }
        list
    }

    /// True when `value` (already trimmed) is a placeholder: a listed value,
    /// a value made only of `0` and `-` (`0`, `000-0`, the nil UUID), the
    /// `-1` sentinel, or any of those wrapped in quotes.
    pub fn is_blocked(&self, value: &str) -> bool {
        let inner = unquote(value).trim();
        let lower = inner.to_lowercase();
        self.values.contains(&lower) || is_zero_dash(inner) || is_minus_one(inner)
    }
}

/// Strips one pair of matching single or double quotes.
fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|rest| rest.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

/// Only `0` and `-`: zero ids and the nil UUID.
fn is_zero_dash(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c == '0' || c == '-')
}

/// `-1`, the other "no id" sentinel sources send.
fn is_minus_one(value: &str) -> bool {
    value == "-1"
}

/// Cleans the raw identifiers of one event. Dropped values come back as
/// refusals (the event itself is always kept).
pub fn normalise(raw: &Identifiers, blocklist: &Blocklist) -> (Identifiers, Vec<Refusal>) {
    let mut refusals = Vec::new();
    let mut field = |kind: IdentKind, value: &Option<String>| -> Option<String> {
        let value = value.as_deref()?;
        match clean(kind, value, blocklist) {
            Ok(v) => v,
            Err(reason) => {
                refusals.push(Refusal::new(kind, value.trim(), reason));
                None
            }
        }
    };
    let clean_ids = Identifiers {
        external_id: field(IdentKind::ExternalId, &raw.external_id),
        email: field(IdentKind::Email, &raw.email),
        visitor_id: field(IdentKind::VisitorId, &raw.visitor_id),
    };
    (clean_ids, refusals)
}

/// One value: `Ok(None)` when absent, `Ok(Some)` when usable.
fn clean(
    kind: IdentKind,
    value: &str,
    blocklist: &Blocklist,
) -> Result<Option<String>, RefusalReason> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().count() > MAX_IDENTIFIER_CHARS {
        return Err(RefusalReason::TooLong);
    }
    if value.chars().any(char::is_control) {
        return Err(RefusalReason::ControlCharacter);
    }
    if blocklist.is_blocked(value) {
        return Err(RefusalReason::BlockedValue);
    }
    if kind == IdentKind::Email {
        return clean_email(value).map(Some);
    }
    Ok(Some(value.to_owned()))
}

/// Lowercases and checks the one-`@` shape. Gmail dots and `+tags` are kept:
/// folding them would merge people a provider may treat as distinct.
fn clean_email(value: &str) -> Result<String, RefusalReason> {
    let lower = value.to_lowercase();
    match lower.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(lower)
        }
        _ => Err(RefusalReason::InvalidEmail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(x: &str, e: &str, v: &str) -> Identifiers {
        Identifiers {
            external_id: Some(x.into()),
            email: Some(e.into()),
            visitor_id: Some(v.into()),
        }
    }

    #[test]
    fn trims_and_lowercases_email_only() {
        let (clean, refusals) = normalise(
            &ids(" AbC ", "  Jo.E+x@Mail.COM ", "Vis"),
            &Blocklist::default(),
        );
        assert!(refusals.is_empty());
        assert_eq!(clean.external_id.as_deref(), Some("AbC"));
        assert_eq!(clean.email.as_deref(), Some("jo.e+x@mail.com"));
        assert_eq!(clean.visitor_id.as_deref(), Some("Vis"));
    }

    #[test]
    fn empty_is_absent_without_refusal() {
        let (clean, refusals) = normalise(&ids("  ", "", "\t"), &Blocklist::default());
        assert_eq!(clean, Identifiers::default());
        assert!(refusals.is_empty());
    }

    #[test]
    fn blocked_values_are_refused() {
        let b = Blocklist::default();
        for v in [
            "null",
            "NULL",
            "\"null\"",
            "'Anonymous'",
            "0",
            "-1",
            "000-0",
            "[object Object]",
            "00000000-0000-0000-0000-000000000000",
            "\"0\"",
            "{}",
            "N/A",
            "<nil>",
        ] {
            assert!(b.is_blocked(v), "{v}");
        }
        for v in ["abc", "0a", "user-0", "1"] {
            assert!(!b.is_blocked(v), "{v}");
        }
        let (_, refusals) = normalise(&ids("undefined", "x", "guest"), &b);
        let reasons: Vec<_> = refusals.iter().map(|r| r.reason).collect();
        assert_eq!(
            reasons,
            vec![
                RefusalReason::BlockedValue,
                RefusalReason::InvalidEmail,
                RefusalReason::BlockedValue
            ]
        );
    }

    #[test]
    fn extra_blocked_values_per_source() {
        let b = Blocklist::with_extra([" Test-User "]);
        assert!(b.is_blocked("test-user"));
        assert!(b.is_blocked("null"));
    }

    #[test]
    fn invalid_emails_too_long_and_control_characters() {
        let b = Blocklist::default();
        for e in ["a@b@c", "@b", "a@", "ab"] {
            let (clean, r) = normalise(
                &Identifiers {
                    email: Some(e.into()),
                    ..Default::default()
                },
                &b,
            );
            assert_eq!(clean.email, None);
            assert_eq!(r[0].reason, RefusalReason::InvalidEmail, "{e}");
        }
        let long = "a".repeat(201);
        let (_, r) = normalise(
            &Identifiers {
                visitor_id: Some(long),
                ..Default::default()
            },
            &b,
        );
        assert_eq!(r[0].reason, RefusalReason::TooLong);
        assert!(r[0].value.chars().count() <= 65);
        let (_, r) = normalise(
            &Identifiers {
                visitor_id: Some("a\u{0}b".into()),
                ..Default::default()
            },
            &b,
        );
        assert_eq!(r[0].reason, RefusalReason::ControlCharacter);
        let (clean, r) = normalise(
            &Identifiers {
                visitor_id: Some("a".repeat(200)),
                ..Default::default()
            },
            &b,
        );
        assert!(r.is_empty());
        assert!(clean.visitor_id.is_some());
    }
}
