//! Event time from a rendered `timestamp` slot.
//!
//! Senders disagree: Segment sends RFC 3339, Stripe unix seconds, HubSpot
//! unix milliseconds. Seconds and milliseconds are told apart by magnitude,
//! which is unambiguous for any date between 1973 and 5138.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

/// Below this, a unix number is seconds (1e11 s is the year 5138); below
/// 1e14 milliseconds, below 1e17 microseconds, else nanoseconds.
const SECONDS_LIMIT: f64 = 1e11;

/// Parses a JSON value kept by a bare-path template.
pub fn from_value(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => n.as_f64().and_then(from_unix),
        Value::String(s) => parse(s),
        _ => None,
    }
}

/// Parses RFC 3339 text or a unix time written as digits.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    text.parse::<f64>().ok().and_then(from_unix)
}

/// Unix time in seconds, millis, micros or nanos, chosen by magnitude.
fn from_unix(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() {
        return None;
    }
    let mut seconds = n;
    for _ in 0..3 {
        if seconds.abs() < SECONDS_LIMIT {
            break;
        }
        seconds /= 1000.0;
    }
    if seconds.abs() >= SECONDS_LIMIT {
        return None;
    }
    let nanos = (seconds.fract() * 1e9).round() as i64;
    let whole = seconds.trunc() as i64;
    Utc.timestamp_opt(whole, 0)
        .single()
        .and_then(|t| t.checked_add_signed(chrono::Duration::nanoseconds(nanos)))
}

/// The warning for a value that is neither.
pub fn warning(shown: &str) -> String {
    format!("timestamp `{shown}` is not RFC 3339 or unix time; kept received_at")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn rfc3339_with_offset() {
        assert_eq!(
            parse("2024-03-01T10:00:00-05:00"),
            Some(at("2024-03-01T15:00:00Z"))
        );
    }

    #[test]
    fn seconds_and_millis_by_magnitude() {
        let want = at("2024-03-01T15:00:00Z");
        assert_eq!(parse("1709305200"), Some(want));
        assert_eq!(parse("1709305200000"), Some(want));
        assert_eq!(from_value(&json!(1709305200)), Some(want));
        assert_eq!(from_value(&json!(1709305200000u64)), Some(want));
        assert_eq!(parse("1709305200.5"), Some(at("2024-03-01T15:00:00.5Z")));
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(parse("abc"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("1e400"), None);
        assert_eq!(from_value(&json!(true)), None);
        assert_eq!(from_value(&json!(f64::MAX)), None);
    }
}
