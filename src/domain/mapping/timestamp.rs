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

/// How far past its arrival an event may be dated. Clock skew between a
/// sender and Inlet is seconds to minutes, and a sender in another time zone
/// that writes local time as UTC is off by at most 14 hours; a day covers
/// both while still stopping a far-future date from winning every trait.
pub const MAX_AHEAD: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// True when `t` is more than [`MAX_AHEAD`] past `received_at`.
pub fn too_far_ahead(t: DateTime<Utc>, received_at: DateTime<Utc>) -> bool {
    received_at
        .checked_add_signed(MAX_AHEAD)
        .is_some_and(|limit| t > limit)
}

/// The warning for a timestamp clamped to the arrival time.
pub fn future_warning(t: DateTime<Utc>) -> String {
    format!(
        "timestamp `{}` is more than {} hours after the event arrived; kept received_at",
        t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        MAX_AHEAD.num_hours()
    )
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
    fn future_bound_is_a_day_past_arrival() {
        let arrived = at("2025-06-01T12:00:00Z");
        assert!(!too_far_ahead(at("2025-06-02T12:00:00Z"), arrived));
        assert!(too_far_ahead(at("2025-06-02T12:00:00.001Z"), arrived));
        assert!(!too_far_ahead(at("0001-01-01T00:00:00Z"), arrived));
        // At the end of chrono's range the bound cannot be computed: nothing is ahead.
        assert!(!too_far_ahead(
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::MAX_UTC
        ));
        assert_eq!(
            future_warning(at("4000-01-01T00:00:00Z")),
            "timestamp `4000-01-01T00:00:00Z` is more than 24 hours after the event arrived; kept received_at"
        );
    }

    #[test]
    fn out_of_range_numbers_are_none_not_panics() {
        for n in [
            "-99999999999",
            "99999999999999999999",
            "-1e308",
            "1e-400",
            "-0",
            "NaN",
            "inf",
        ] {
            let _ = parse(n);
        }
        assert_eq!(from_value(&serde_json::from_str("1e400").unwrap()), None);
        assert_eq!(from_value(&serde_json::from_str("-1e400").unwrap()), None);
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
