//! Masking of example values that look like secrets.
//!
//! Examples are shown in the dashboard and persisted, so a card number or an
//! API key seen once must never be stored in clear. Both the key name and the
//! value are checked: senders put tokens under innocent names too.

/// Key-name fragments that mark a field as secret (compared lowercase,
/// ignoring `_` and `-`).
const SECRET_KEYS: [&str; 11] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "card",
    "cvv",
    "cvc",
    "ssn",
    "iban",
];

/// Value prefixes of well-known credentials.
const SECRET_PREFIXES: [&str; 10] = [
    "bearer ", "basic ", "sk_live_", "sk_test_", "rk_live_", "pk_live_", "ghp_", "xoxb-", "xoxp-",
    "akia",
];

/// Whether a key name (the last path segment) marks its values secret.
pub fn is_secret_key(key: &str) -> bool {
    let mut norm = String::with_capacity(key.len());
    norm.extend(
        key.chars()
            .filter(|c| *c != '_' && *c != '-')
            .map(|c| c.to_ascii_lowercase()),
    );
    SECRET_KEYS.iter().any(|k| norm.contains(k))
}

/// Whether a value looks like a credential: a known prefix, or a long run of
/// mixed letters and digits with no spaces (random tokens, hashes).
pub fn looks_secret(value: &str) -> bool {
    let v = value.trim();
    let head: String = v.chars().take(8).flat_map(char::to_lowercase).collect();
    if SECRET_PREFIXES.iter().any(|p| head.starts_with(p)) {
        return true;
    }
    if v.len() < 24 || super::format::is_uuid(v) {
        return false;
    }
    let b = v.as_bytes();
    let token_chars = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'=' | b'+' | b'/'));
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
    token_chars && digits * 10 >= b.len() && letters * 10 >= b.len() && !v.contains("://")
}

/// `sk_live_abc…` → `sk_l…(masked)`: enough to recognise, not to use.
pub fn mask(value: &str) -> String {
    let head: String = value.chars().take(4).collect();
    format!("{head}…(masked)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_names() {
        for k in [
            "password",
            "api_key",
            "apiKey",
            "X-Api-Key",
            "card_number",
            "ssn",
            "access_token",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["email", "name", "id", "amount"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn secret_looking_values() {
        assert!(looks_secret("sk_live_51H8abc"));
        assert!(looks_secret("Bearer abc.def"));
        assert!(looks_secret("a8F3kL9qZ2xR7mN4pT6vW1yB"));
        assert!(!looks_secret("0191c1a2-7d3e-7c4a-9b1e-1234567890ab"));
        assert!(!looks_secret("https://example.com/a1b2c3d4e5f6g7h8i9j0"));
        assert!(!looks_secret("internationalization-department"));
        assert_eq!(mask("sk_live_51H8abc"), "sk_l…(masked)");
    }
}
