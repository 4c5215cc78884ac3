//! Cheap recognisers for the string and number formats a marketer cares about.
//!
//! They run on every value of every record, so each one bails out on the
//! first byte that cannot match and none allocates (no regex).

use serde::{Deserialize, Serialize};

/// A recognised value format, reported per path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Email,
    Uuid,
    DateTime,
    Url,
    Ip,
    Phone,
    Currency,
}

impl Format {
    /// Every format, in the order counts are stored.
    pub const ALL: [Format; 7] = [
        Format::Email,
        Format::Uuid,
        Format::DateTime,
        Format::Url,
        Format::Ip,
        Format::Phone,
        Format::Currency,
    ];

    /// The name used in views and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Email => "email",
            Format::Uuid => "uuid",
            Format::DateTime => "date-time",
            Format::Url => "url",
            Format::Ip => "ip",
            Format::Phone => "phone",
            Format::Currency => "currency",
        }
    }

    /// Index into a per-path count array.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Unix seconds for 2000-01-01 and 2100-01-01: outside that, a number is
/// more likely an amount or an id than a timestamp.
const UNIX_MIN: f64 = 946_684_800.0;
const UNIX_MAX: f64 = 4_102_444_800.0;

/// The format of a string, checked most specific first.
pub fn of_str(s: &str) -> Option<Format> {
    let s = s.trim();
    if s.is_empty() || s.len() > 320 {
        return None;
    }
    if is_uuid(s) {
        Some(Format::Uuid)
    } else if is_date_time(s) {
        Some(Format::DateTime)
    } else if is_email(s) {
        Some(Format::Email)
    } else if is_url(s) {
        Some(Format::Url)
    } else if is_ip(s) {
        Some(Format::Ip)
    } else if is_currency(s) {
        Some(Format::Currency)
    } else if is_phone(s) {
        Some(Format::Phone)
    } else {
        None
    }
}

/// Numbers only carry one format: unix seconds or milliseconds in 2000–2100.
pub fn of_number(n: f64) -> Option<Format> {
    let plausible = |x: f64| (UNIX_MIN..=UNIX_MAX).contains(&x);
    (plausible(n) || plausible(n / 1000.0)).then_some(Format::DateTime)
}

pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn all_digits(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_digit)
}

/// RFC 3339 and the common ISO 8601 shapes: `2024-01-02`,
/// `2024-01-02T03:04:05`, `2024-01-02 03:04:05.123+02:00`, `...Z`.
pub fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    if !(all_digits(&b[..4]) && all_digits(&b[5..7]) && all_digits(&b[8..10])) {
        return false;
    }
    let month = (b[5] - b'0') * 10 + (b[6] - b'0');
    let day = (b[8] - b'0') * 10 + (b[9] - b'0');
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    let rest = &b[10..];
    if rest.is_empty() {
        return true;
    }
    is_time_part(rest)
}

fn is_time_part(rest: &[u8]) -> bool {
    if rest.len() < 6 || !matches!(rest[0], b'T' | b't' | b' ') {
        return false;
    }
    let t = &rest[1..];
    if !(all_digits(&t[..2]) && t[2] == b':' && all_digits(&t[3..5])) {
        return false;
    }
    // Seconds, fraction and offset: only the characters they may use.
    t[5..]
        .iter()
        .all(|c| c.is_ascii_digit() || matches!(c, b':' | b'.' | b',' | b'Z' | b'z' | b'+' | b'-'))
}

pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && domain.len() >= 3
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s
            .bytes()
            .any(|c| c.is_ascii_whitespace() || c == b',' || c == b'<')
}

pub fn is_url(s: &str) -> bool {
    let lower_prefix = |p: &str| {
        s.len() > p.len() + 2 && s.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    };
    (lower_prefix("http://") || lower_prefix("https://") || lower_prefix("ftp://"))
        && !s.bytes().any(|c| c.is_ascii_whitespace())
}

pub fn is_ip(s: &str) -> bool {
    let first = s.as_bytes()[0];
    (first.is_ascii_hexdigit() || first == b':')
        && s.len() <= 45
        && s.parse::<std::net::IpAddr>().is_ok()
}

/// Currency symbols and ISO codes recognised around an amount.
const SYMBOLS: [&str; 6] = ["$", "€", "£", "¥", "₹", "CHF"];

/// `12.50`, `$12.50`, `12,50 EUR`, `€ 1.234,56`, `-3.00 USD`.
pub fn is_currency(s: &str) -> bool {
    let (amount, marked) = strip_currency_mark(s);
    let amount = amount.trim().trim_start_matches('-');
    if amount.is_empty() || !amount.as_bytes()[0].is_ascii_digit() {
        return false;
    }
    let b = amount.as_bytes();
    if !b
        .iter()
        .all(|c| c.is_ascii_digit() || *c == b'.' || *c == b',')
    {
        return false;
    }
    // Two decimals after the last separator, or a currency mark and digits.
    let two_decimals =
        b.len() >= 4 && matches!(b[b.len() - 3], b'.' | b',') && all_digits(&b[b.len() - 2..]);
    two_decimals || (marked && b.iter().any(u8::is_ascii_digit))
}

fn strip_currency_mark(s: &str) -> (&str, bool) {
    for sym in SYMBOLS {
        if let Some(rest) = s.strip_prefix(sym).or_else(|| s.strip_suffix(sym)) {
            return (rest, true);
        }
    }
    let b = s.as_bytes();
    let is_code = |c: &[u8]| c.len() == 3 && c.iter().all(u8::is_ascii_uppercase);
    if b.len() > 4 && is_code(&b[b.len() - 3..]) && b[b.len() - 4] == b' ' {
        return (&s[..s.len() - 4], true);
    }
    if b.len() > 4 && is_code(&b[..3]) && b[3] == b' ' {
        return (&s[4..], true);
    }
    (s, false)
}

/// E.164-ish: 7–15 digits, with a leading `+` or separators.
pub fn is_phone(s: &str) -> bool {
    let b = s.as_bytes();
    // A malformed date (`2024-13-01`) is not a phone number.
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        return false;
    }
    let plus = b[0] == b'+';
    let mut digits = 0;
    let mut separators = 0;
    for (i, c) in b.iter().enumerate() {
        match c {
            b'0'..=b'9' => digits += 1,
            b' ' | b'-' | b'(' | b')' | b'.' => separators += 1,
            b'+' if i == 0 => {}
            _ => return false,
        }
    }
    (7..=15).contains(&digits) && (plus || separators > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_each_format() {
        let cases = [
            ("ann@example.com", Some(Format::Email)),
            ("0191c1a2-7d3e-7c4a-9b1e-1234567890ab", Some(Format::Uuid)),
            ("2024-05-01T12:30:00Z", Some(Format::DateTime)),
            ("2024-05-01 12:30:00.123+02:00", Some(Format::DateTime)),
            ("2024-05-01", Some(Format::DateTime)),
            ("https://example.com/x", Some(Format::Url)),
            ("192.168.1.10", Some(Format::Ip)),
            ("2001:db8::1", Some(Format::Ip)),
            ("+49 30 1234567", Some(Format::Phone)),
            ("(555) 123-4567", Some(Format::Phone)),
            ("12.50", Some(Format::Currency)),
            ("$12.50", Some(Format::Currency)),
            ("12,50 EUR", Some(Format::Currency)),
            ("€1.234,56", Some(Format::Currency)),
            ("hello", None),
            ("3828101", None),
            ("2024-13-01", None),
            ("a@b", None),
        ];
        for (s, want) in cases {
            assert_eq!(of_str(s), want, "{s}");
        }
    }

    #[test]
    fn unix_numbers_in_range_are_date_times() {
        assert_eq!(of_number(1_714_566_600.0), Some(Format::DateTime));
        assert_eq!(of_number(1_714_566_600_000.0), Some(Format::DateTime));
        assert_eq!(of_number(42.0), None);
        assert_eq!(of_number(9.9e15), None);
    }
}
