//! Identifier normalisation and the blocklist.
//!
//! Sources send placeholders (`"null"`, `"anonymous"`, `"0"`) where they have
//! no identity. Taking those literally would merge every anonymous visitor of
//! a site into one giant profile, so they are dropped here, before lookup.
//!
//! The one rule every step follows: **no value containing a non-ASCII
//! character may normalise to a value that an ASCII-only value also
//! normalises to**, unless the ASCII rules alone made them equal. So trimming
//! and lowercasing are ASCII-only, there is no Unicode normalisation (NFC maps
//! the Kelvin sign to `K`, NFKC maps fullwidth letters to ASCII), and
//! characters that cannot be seen (format and control characters, odd
//! spaces) refuse the identifier instead of being stripped or kept: a
//! look-alike value must neither join another person's profile nor quietly
//! make a second one.

use super::kinds::{IdentKind, KindSet, KindSpec, Normalise};
use super::types::{Identifiers, Refusal, RefusalReason};
use std::collections::BTreeSet;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

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

/// Cleans the raw identifiers of one event by each kind's rules. Dropped
/// values come back as refusals (the event itself is always kept); a value
/// of a kind `kinds` does not define, or has disabled, is refused too.
pub fn normalise(
    raw: &Identifiers,
    kinds: &KindSet,
    blocklist: &Blocklist,
) -> (Identifiers, Vec<Refusal>) {
    let mut refusals = Vec::new();
    let mut clean_ids = Identifiers::default();
    for (kind, value) in raw.each() {
        let cleaned = match kinds.spec(&kind) {
            None => Err(RefusalReason::UnknownKind),
            Some(spec) if !spec.enabled => Err(RefusalReason::KindDisabled),
            Some(spec) => clean(spec, value, blocklist),
        };
        match cleaned {
            Ok(v) => clean_ids.set(kind, v),
            Err(reason) => refusals.push(Refusal::new(kind, trim(value), reason)),
        }
    }
    (clean_ids, refusals)
}

/// One value by its kind's rules (see [`normalise`]).
pub fn normalise_one(
    kind: &IdentKind,
    value: &str,
    kinds: &KindSet,
    blocklist: &Blocklist,
) -> Result<Option<String>, RefusalReason> {
    match kinds.spec(kind) {
        None => Err(RefusalReason::UnknownKind),
        Some(spec) => clean(spec, value, blocklist),
    }
}

/// Trims ASCII whitespace only: stripping a non-breaking space would turn a
/// non-ASCII value into an ASCII one (such spaces are refused instead).
pub fn trim(value: &str) -> &str {
    value.trim_ascii()
}

/// Lowercases ASCII letters only: Unicode lowercasing maps the Kelvin sign
/// (U+212A) to `k` and so joins `\u{212A}im@…` to `kim@…`.
pub fn lowercase_email(value: &str) -> String {
    value.to_ascii_lowercase()
}

/// Default-ignorable code points (Unicode's DerivedCoreProperties) that are
/// not in category Cf, so the general category alone does not catch them:
/// they render as nothing. Ranges are inclusive.
const IGNORABLE_NOT_CF: &[(char, char)] = &[
    ('\u{034F}', '\u{034F}'),   // combining grapheme joiner
    ('\u{115F}', '\u{1160}'),   // Hangul choseong / jungseong fillers
    ('\u{17B4}', '\u{17B5}'),   // Khmer inherent vowels
    ('\u{180B}', '\u{180F}'),   // Mongolian variation selectors
    ('\u{3164}', '\u{3164}'),   // Hangul filler
    ('\u{FE00}', '\u{FE0F}'),   // variation selectors
    ('\u{FFA0}', '\u{FFA0}'),   // halfwidth Hangul filler
    ('\u{E0000}', '\u{E0FFF}'), // tags and variation selectors supplement
];

/// Why a character cannot appear in an identifier, if it cannot.
fn refused_character(c: char) -> Option<RefusalReason> {
    if c.is_ascii() {
        return c
            .is_ascii_control()
            .then_some(RefusalReason::ControlCharacter);
    }
    match c.general_category() {
        GeneralCategory::Control => Some(RefusalReason::ControlCharacter),
        GeneralCategory::Format
        | GeneralCategory::LineSeparator
        | GeneralCategory::ParagraphSeparator => Some(RefusalReason::InvisibleCharacter),
        GeneralCategory::SpaceSeparator => Some(RefusalReason::UnusualSpace),
        _ if IGNORABLE_NOT_CF
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&c)) =>
        {
            Some(RefusalReason::InvisibleCharacter)
        }
        _ => None,
    }
}

/// One value: `Ok(None)` when absent, `Ok(Some)` when usable.
fn clean(
    spec: &KindSpec,
    value: &str,
    blocklist: &Blocklist,
) -> Result<Option<String>, RefusalReason> {
    // Blank is absent for every kind, even one kept exactly as sent: a
    // template rendering spaces would otherwise make one identifier that
    // joins every event it appears on.
    if trim(value).is_empty() {
        return Ok(None);
    }
    let value = match spec.normalise {
        Normalise::None => value,
        _ => trim(value),
    };
    if value.chars().count() > MAX_IDENTIFIER_CHARS {
        return Err(RefusalReason::TooLong);
    }
    if let Some(reason) = value.chars().find_map(refused_character) {
        return Err(reason);
    }
    if blocklist.is_blocked(value) || blocked_for_kind(spec, value) {
        return Err(RefusalReason::BlockedValue);
    }
    match spec.normalise {
        Normalise::Email => clean_email(value).map(Some),
        Normalise::Lowercase => Ok(Some(value.to_ascii_lowercase())),
        Normalise::Trim | Normalise::None => Ok(Some(value.to_owned())),
    }
}

/// The kind's own blocked values, compared as the blocklist compares
/// (trimmed, Unicode-lowercased: a look-alike is refused, never joined).
fn blocked_for_kind(spec: &KindSpec, value: &str) -> bool {
    if spec.blocked_values.is_empty() {
        return false;
    }
    let lower = unquote(value).trim().to_lowercase();
    spec.blocked_values
        .iter()
        .any(|b| b.trim().to_lowercase() == lower)
}

/// Lowercases (ASCII only) and checks the one-`@` shape. Gmail dots and
/// `+tags` are kept: folding them would merge people a provider may treat as
/// distinct.
fn clean_email(value: &str) -> Result<String, RefusalReason> {
    let lower = lowercase_email(value);
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

    /// `normalise` by the built-in kinds.
    fn norm(raw: &Identifiers, b: &Blocklist) -> (Identifiers, Vec<Refusal>) {
        normalise(raw, &KindSet::default(), b)
    }
    use proptest::prelude::*;

    fn ids(x: &str, e: &str, v: &str) -> Identifiers {
        Identifiers {
            external_id: Some(x.into()),
            email: Some(e.into()),
            visitor_id: Some(v.into()),
            other: Default::default(),
        }
    }

    #[test]
    fn trims_and_lowercases_email_only() {
        let (clean, refusals) = norm(
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
        let (clean, refusals) = norm(&ids("  ", "", "\t"), &Blocklist::default());
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
        let (_, refusals) = norm(&ids("undefined", "x", "guest"), &b);
        let reasons: Vec<_> = refusals.iter().map(|r| r.reason.clone()).collect();
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
            let (clean, r) = norm(
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
        let (_, r) = norm(
            &Identifiers {
                visitor_id: Some(long),
                ..Default::default()
            },
            &b,
        );
        assert_eq!(r[0].reason, RefusalReason::TooLong);
        assert!(r[0].value.chars().count() <= 65);
        let (_, r) = norm(
            &Identifiers {
                visitor_id: Some("a\u{0}b".into()),
                ..Default::default()
            },
            &b,
        );
        assert_eq!(r[0].reason, RefusalReason::ControlCharacter);
        let (clean, r) = norm(
            &Identifiers {
                visitor_id: Some("a".repeat(200)),
                ..Default::default()
            },
            &b,
        );
        assert!(r.is_empty());
        assert!(clean.visitor_id.is_some());
    }

    fn one(kind: &IdentKind, value: &str) -> Result<Option<String>, RefusalReason> {
        normalise_one(kind, value, &KindSet::default(), &Blocklist::default())
    }

    #[test]
    fn kelvin_sign_stays_apart_from_k() {
        let kelvin = one(&IdentKind::Email, "\u{212A}im@example.com").unwrap();
        let plain = one(&IdentKind::Email, "Kim@Example.com").unwrap();
        assert_eq!(kelvin.as_deref(), Some("\u{212A}im@example.com"));
        assert_eq!(plain.as_deref(), Some("kim@example.com"));
        // Non-ASCII letters keep their case: a split, never a merge.
        assert_eq!(
            one(&IdentKind::Email, "ÜNAL@X.de").unwrap().as_deref(),
            Some("Ünal@x.de")
        );
    }

    #[test]
    fn invisible_characters_and_odd_spaces_are_refused() {
        for c in [
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{202A}',
            '\u{202E}',
            '\u{2066}',
            '\u{2069}',
            '\u{2060}',
            '\u{061C}',
            '\u{E0041}',
            '\u{FE0F}',
            '\u{034F}',
            '\u{3164}',
            '\u{2028}',
            '\u{2029}',
        ] {
            for kind in [
                IdentKind::ExternalId,
                IdentKind::Email,
                IdentKind::VisitorId,
            ] {
                for v in [format!("kim{c}@example.com"), format!("{c}kim@example.com")] {
                    assert_eq!(
                        one(&kind, &v),
                        Err(RefusalReason::InvisibleCharacter),
                        "{c:?}"
                    );
                }
            }
        }
        for c in ['\u{00A0}', '\u{2003}', '\u{202F}', '\u{3000}', '\u{1680}'] {
            let v = format!("kim@example.com{c}");
            assert_eq!(
                one(&IdentKind::Email, &v),
                Err(RefusalReason::UnusualSpace),
                "{c:?}"
            );
        }
        for c in ['\u{0085}', '\u{009F}', '\u{0007}', '\u{007F}'] {
            let v = format!("a{c}b");
            assert_eq!(
                one(&IdentKind::VisitorId, &v),
                Err(RefusalReason::ControlCharacter)
            );
        }
        // ASCII whitespace at the ends is still trimmed; a plain space inside is kept.
        assert_eq!(
            one(&IdentKind::VisitorId, "\t a b \r\n")
                .unwrap()
                .as_deref(),
            Some("a b")
        );
        // The refusal shows the invisible character escaped, so it can be seen.
        let (_, r) = norm(
            &Identifiers {
                email: Some("kim\u{200B}@example.com".into()),
                ..Default::default()
            },
            &Blocklist::default(),
        );
        assert_eq!(r[0].value, "kim\\u{200b}@example.com");
    }

    /// Look-alikes of ASCII letters, invisible and odd-space characters,
    /// then anything: the characters that fold or hide in practice.
    fn tricky_char() -> impl Strategy<Value = char> {
        prop_oneof![
            4 => prop::char::range('!', '~'),
            2 => prop::sample::select(vec![
                '\u{212A}', '\u{212B}', '\u{0130}', '\u{0131}', '\u{017F}', '\u{FF4B}', '\u{FB00}',
                '\u{00DF}', '\u{1E9E}', '\u{03A3}', '\u{0410}', '\u{00C5}', '\u{00E9}', '\u{0301}',
                '\u{200B}', '\u{00A0}', '\u{FEFF}', '\u{202E}', '\u{00AD}', '\u{2028}', '\u{3000}',
                ' ', '@', 'K', 'k', 'S', 's', 'I', 'i',
            ]),
            1 => any::<char>(),
        ]
    }

    fn tricky_string() -> impl Strategy<Value = String> {
        prop::collection::vec(tricky_char(), 0..24).prop_map(|v| v.into_iter().collect())
    }

    fn kinds() -> impl Strategy<Value = IdentKind> {
        prop::sample::select(vec![
            IdentKind::ExternalId,
            IdentKind::Email,
            IdentKind::VisitorId,
        ])
    }

    /// The ASCII-only rules: the reference the folding property compares with.
    fn ascii_rules(kind: &IdentKind, v: &str) -> String {
        match kind {
            IdentKind::Email => v.trim_ascii().to_ascii_lowercase(),
            _ => v.trim_ascii().to_owned(),
        }
    }

    proptest! {
        /// A value with a non-ASCII character never normalises to what an
        /// ASCII-only value normalises to, unless the ASCII rules alone made
        /// them equal (they never do: ASCII rules keep non-ASCII characters).
        #[test]
        fn non_ascii_never_folds_into_ascii(
            kind in kinds(),
            tricky in tricky_string(),
            ascii in "[ -~]{0,24}",
        ) {
            let (Ok(Some(a)), Ok(Some(b))) = (one(&kind, &tricky), one(&kind, &ascii)) else {
                return Ok(());
            };
            if !tricky.is_ascii() {
                prop_assert!(!a.is_ascii(), "{tricky:?} normalised to ASCII {a:?}");
            }
            if a == b {
                prop_assert_eq!(ascii_rules(&kind, &tricky), ascii_rules(&kind, &ascii));
            }
        }

        /// Two values normalise equal only when the ASCII rules make them
        /// equal (no Unicode folding at all).
        #[test]
        fn equal_only_by_ascii_rules(kind in kinds(), x in tricky_string(), y in tricky_string()) {
            if let (Ok(Some(a)), Ok(Some(b))) = (one(&kind, &x), one(&kind, &y)) {
                prop_assert_eq!(a == b, ascii_rules(&kind, &x) == ascii_rules(&kind, &y));
            }
        }

        /// No accepted identifier holds a Cc or Cf character, an odd space or
        /// a line separator.
        #[test]
        fn no_accepted_identifier_holds_a_control_or_format_character(
            kind in kinds(),
            v in tricky_string(),
        ) {
            if let Ok(Some(clean)) = one(&kind, &v) {
                for c in clean.chars() {
                    let category = c.general_category();
                    prop_assert!(
                        !matches!(
                            category,
                            GeneralCategory::Control
                                | GeneralCategory::Format
                                | GeneralCategory::LineSeparator
                                | GeneralCategory::ParagraphSeparator
                        ),
                        "{c:?} accepted in {clean:?}"
                    );
                    prop_assert!(c == ' ' || category != GeneralCategory::SpaceSeparator);
                }
            }
        }

        /// Normalising a normalised value changes nothing and refuses nothing.
        #[test]
        fn normalise_is_idempotent(kind in kinds(), v in tricky_string()) {
            if let Ok(Some(clean)) = one(&kind, &v) {
                prop_assert_eq!(one(&kind, &clean), Ok(Some(clean.clone())));
            }
        }

        /// Distinct integers, however long, stay distinct identifiers.
        #[test]
        fn big_integers_stay_distinct(a in "[1-9][0-9]{15,40}", b in "[1-9][0-9]{15,40}") {
            let x = one(&IdentKind::ExternalId, &a).unwrap();
            let y = one(&IdentKind::ExternalId, &b).unwrap();
            prop_assert_eq!(x == y, a == b);
            prop_assert_eq!(x.as_deref(), Some(a.as_str()));
        }
    }
}
