//! Sources: one secret webhook URL each, an optional api-key header, and the
//! settings that shape how its requests become records.
//!
//! Secrets never rest in clear text: the URL token and the api-key value are
//! kept as SHA-256 hashes. Both are high-entropy or operator-chosen strings
//! compared for equality only, so a fast hash is enough (no password KDF), and
//! the comparison of hashes is constant-time.

use crate::domain::ids::SourceId;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random bytes in a source token: 256 bits, well over the 128 required.
const TOKEN_BYTES: usize = 32;

/// The SHA-256 of a secret, hex encoded (what the store keeps).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(pub String);

impl SecretHash {
    pub fn of(secret: &[u8]) -> Self {
        // One formatting pass over the whole digest (the digest type
        // implements `LowerHex`): this runs on every hook request.
        Self(format!("{:x}", Sha256::digest(secret)))
    }

    /// Constant-time check of a presented secret against this hash.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented = Self::of(presented);
        presented.0.as_bytes().ct_eq(self.0.as_bytes()).into()
    }
}

/// A fresh URL-safe source token.
pub fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An api-key requirement: the header name (lowercase) and the value's hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub header: String,
    pub value_hash: SecretHash,
}

/// A source as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub id: SourceId,
    pub name: String,
    pub token_hash: SecretHash,
    pub api_key: Option<ApiKey>,
    pub records_path: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The current mapping version, if any mapping was saved.
    #[serde(default)]
    pub mapping_version: Option<u32>,
    /// Extra values never accepted as identifiers, on top of the built-in list.
    #[serde(default)]
    pub blocked_values: Vec<String>,
    /// Signature verification (`domain::signature`); its secrets are sealed.
    #[serde(default)]
    pub verify: Option<crate::domain::signature::Verify>,
    /// The first characters of the current token, so a page can tell URLs
    /// apart without showing one (`None` for sources made before hints).
    #[serde(default)]
    pub token_hint: Option<String>,
    /// The token the last rotation replaced, while its grace lasts (and
    /// after, until the next rotation, so pages can say when it stopped).
    #[serde(default)]
    pub previous_token: Option<PreviousToken>,
    /// Requests per second this source accepts; `None`: no limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// The api-key part of a create/update request.
#[derive(Clone, Debug, Deserialize)]
pub struct ApiKeyInput {
    pub header: String,
    pub value: String,
}

/// Why a source setting was refused; each message says what to fix.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SourceError {
    #[error("name must not be empty")]
    EmptyName,
    #[error("name is longer than 200 characters")]
    LongName,
    #[error("api_key.header `{0}` is not a valid HTTP header name (letters, digits and - only)")]
    BadHeader(String),
    #[error("api_key.header `{0}` is reserved; pick a custom header such as x-api-key")]
    ReservedHeader(String),
    #[error("api_key.value must be at least 8 characters")]
    ShortKey,
    #[error("records_path `{0}` is not a dotted path like `attachment.data`")]
    BadRecordsPath(String),
    #[error("grace_s must be at most {max} (30 days); got {0}", max = Grace::MAX_S)]
    GraceTooLong(u64),
    #[error("rate_limit.per_s and rate_limit.burst must be between 1 and {max}; got per_s {per_s}, burst {burst}", max = RateLimit::MAX)]
    BadRateLimit { per_s: u32, burst: u32 },
}

impl Source {
    /// A new source and its clear-text token (shown once to the caller).
    pub fn create(
        name: &str,
        api_key: Option<ApiKeyInput>,
        records_path: Option<String>,
    ) -> Result<(Source, String), SourceError> {
        let token = new_token();
        let now = Utc::now();
        let source = Source {
            id: SourceId::new(),
            name: validate_name(name)?,
            token_hash: SecretHash::of(token.as_bytes()),
            api_key: api_key.map(validate_api_key).transpose()?,
            records_path: validate_records_path(records_path)?,
            created_at: now,
            updated_at: now,
            mapping_version: None,
            blocked_values: Vec::new(),
            verify: None,
            token_hint: Some(token_hint(&token)),
            previous_token: None,
            rate_limit: None,
        };
        Ok((source, token))
    }

    /// Replaces the token at once; returns the new clear-text token.
    pub fn rotate(&mut self) -> String {
        self.rotate_with_grace(Grace::NONE)
    }

    /// Replaces the token; the old one keeps working for `grace` (none:
    /// it stops at once). A token still in an earlier grace stops now: one
    /// old URL at a time keeps the token index, the page and the counts
    /// about one thing.
    pub fn rotate_with_grace(&mut self, grace: Grace) -> String {
        let token = new_token();
        let now = Utc::now();
        let old = std::mem::replace(&mut self.token_hash, SecretHash::of(token.as_bytes()));
        let old_hint = self.token_hint.replace(token_hint(&token));
        self.previous_token = (grace.0 > 0).then(|| PreviousToken {
            hash: old,
            hint: old_hint,
            rotated_at: now,
            until: now + chrono::Duration::seconds(grace.0 as i64),
        });
        self.updated_at = now;
        token
    }

    /// Which of this source's tokens `hash` is, at `now`; `None` when it is
    /// neither the current one nor an old one still in its grace.
    pub fn token_use(&self, hash: &SecretHash, now: DateTime<Utc>) -> Option<TokenUse> {
        if self.token_hash == *hash {
            return Some(TokenUse::Current);
        }
        self.previous_token
            .as_ref()
            .filter(|old| old.hash == *hash && old.accepts_at(now))
            .map(|_| TokenUse::Previous)
    }

    /// Every token hash the index must resolve to this source.
    pub fn token_hashes(&self) -> impl Iterator<Item = &SecretHash> {
        std::iter::once(&self.token_hash).chain(self.previous_token.as_ref().map(|old| &old.hash))
    }

    /// Sets (`Some`) or removes (`None`) the rate limit.
    pub fn set_rate_limit(&mut self, limit: Option<RateLimit>) -> Result<(), SourceError> {
        self.rate_limit = limit.map(RateLimit::validated).transpose()?;
        Ok(())
    }

    /// Does a request carrying `presented` (the api-key header's value) pass?
    pub fn accepts_key(&self, presented: Option<&[u8]>) -> bool {
        match (&self.api_key, presented) {
            (None, _) => true,
            (Some(key), Some(value)) => key.value_hash.matches(value),
            (Some(_), None) => false,
        }
    }

    pub fn set_name(&mut self, name: &str) -> Result<(), SourceError> {
        self.name = validate_name(name)?;
        Ok(())
    }

    pub fn set_api_key(&mut self, key: Option<ApiKeyInput>) -> Result<(), SourceError> {
        self.api_key = key.map(validate_api_key).transpose()?;
        Ok(())
    }

    /// Replaces the extra blocked identifier values (trimmed, empty ones dropped).
    pub fn set_blocked_values(&mut self, values: Vec<String>) {
        self.blocked_values = values
            .into_iter()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .take(1000)
            .collect();
    }

    pub fn set_records_path(&mut self, path: Option<String>) -> Result<(), SourceError> {
        self.records_path = validate_records_path(path)?;
        Ok(())
    }
}

fn validate_name(name: &str) -> Result<String, SourceError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(SourceError::EmptyName);
    }
    if name.chars().count() > 200 {
        return Err(SourceError::LongName);
    }
    Ok(name.to_string())
}

/// Headers that carry transport or auth meaning and so cannot hold a key.
const RESERVED_HEADERS: [&str; 6] = [
    "content-type",
    "content-length",
    "host",
    "cookie",
    "transfer-encoding",
    "connection",
];

fn validate_api_key(input: ApiKeyInput) -> Result<ApiKey, SourceError> {
    let header = input.header.trim().to_ascii_lowercase();
    let valid = !header.is_empty()
        && header.len() <= 64
        && header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(SourceError::BadHeader(input.header));
    }
    if RESERVED_HEADERS.contains(&header.as_str()) {
        return Err(SourceError::ReservedHeader(header));
    }
    if input.value.len() < 8 {
        return Err(SourceError::ShortKey);
    }
    Ok(ApiKey {
        header,
        value_hash: SecretHash::of(input.value.as_bytes()),
    })
}

fn validate_records_path(path: Option<String>) -> Result<Option<String>, SourceError> {
    let Some(path) = path.map(|p| p.trim().to_string()).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    if path.split('.').any(str::is_empty) || path.len() > 200 {
        return Err(SourceError::BadRecordsPath(path));
    }
    Ok(Some(path))
}

/// How long a rotated-out token keeps working, in seconds (0: not at all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Grace(u64);

impl Grace {
    pub const NONE: Grace = Grace(0);
    /// Longer than any sender's migration needs; an old URL that works
    /// for ever is a leaked URL that works for ever.
    pub const MAX_S: u64 = 30 * 86_400;

    pub fn seconds(s: u64) -> Result<Self, SourceError> {
        if s > Self::MAX_S {
            return Err(SourceError::GraceTooLong(s));
        }
        Ok(Grace(s))
    }
}

/// A token replaced by a rotation with a grace. Only its hash is kept, as
/// for the current one, and the hint to tell it apart on a page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreviousToken {
    pub hash: SecretHash,
    pub hint: Option<String>,
    pub rotated_at: DateTime<Utc>,
    /// The first instant it is refused.
    pub until: DateTime<Utc>,
}

impl PreviousToken {
    pub fn accepts_at(&self, now: DateTime<Utc>) -> bool {
        now < self.until
    }
}

/// Which token a hook request came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenUse {
    Current,
    /// The rotated-out one, during its grace: counted apart.
    Previous,
}

/// Characters of a token kept to tell URLs apart: 4 of 43 base64
/// characters leave 232 secret bits, and say nothing a log line would not.
const HINT_CHARS: usize = 4;

fn token_hint(token: &str) -> String {
    token.chars().take(HINT_CHARS).collect()
}

/// A token bucket: `burst` requests at once, refilled at `per_s` a second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_s: u32,
    pub burst: u32,
}

impl RateLimit {
    /// Far above what one source's senders need; a bound keeps the
    /// bucket's arithmetic away from overflow.
    pub const MAX: u32 = 1_000_000;

    fn validated(self) -> Result<Self, SourceError> {
        let in_range = |n: u32| (1..=Self::MAX).contains(&n);
        if in_range(self.per_s) && in_range(self.burst) {
            Ok(self)
        } else {
            Err(SourceError::BadRateLimit {
                per_s: self.per_s,
                burst: self.burst,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored token hashes must keep their format: lowercase hex SHA-256.
    #[test]
    fn a_secret_hash_is_the_lowercase_hex_sha256() {
        assert_eq!(
            SecretHash::of(b"abc").0,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(SecretHash::of(b"").0.len(), 64);
    }

    #[test]
    fn tokens_are_long_url_safe_and_distinct() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(a, new_token());
    }

    #[test]
    fn api_key_is_checked_against_its_hash_only() {
        let key = ApiKeyInput {
            header: "X-Api-Key".into(),
            value: "s3cret-value".into(),
        };
        let (source, _) = Source::create("shop", Some(key), None).unwrap();
        let stored = serde_json::to_string(&source).unwrap();
        assert!(!stored.contains("s3cret-value"));
        assert_eq!(source.api_key.as_ref().unwrap().header, "x-api-key");
        assert!(source.accepts_key(Some(b"s3cret-value")));
        assert!(!source.accepts_key(Some(b"s3cret-valuE")));
        assert!(!source.accepts_key(None));
    }

    #[test]
    fn bad_settings_say_what_to_fix() {
        assert_eq!(
            Source::create("  ", None, None).unwrap_err(),
            SourceError::EmptyName
        );
        assert!(matches!(
            Source::create("a", None, Some("a..b".into())).unwrap_err(),
            SourceError::BadRecordsPath(_)
        ));
    }

    #[test]
    fn a_rotation_with_grace_keeps_the_old_token_until_it_ends() {
        let (mut source, first) = Source::create("shop", None, None).unwrap();
        let old = SecretHash::of(first.as_bytes());
        let second = source.rotate_with_grace(Grace::seconds(60).unwrap());
        let now = Utc::now();
        assert_eq!(source.token_use(&old, now), Some(TokenUse::Previous));
        let new = SecretHash::of(second.as_bytes());
        assert_eq!(source.token_use(&new, now), Some(TokenUse::Current));
        let later = now + chrono::Duration::seconds(61);
        assert_eq!(source.token_use(&old, later), None);
        assert_eq!(source.token_hashes().count(), 2);
        assert_eq!(
            source.previous_token.as_ref().unwrap().hint.as_deref(),
            Some(&first[..4])
        );

        // A second rotation: the older old token stops at once.
        source.rotate_with_grace(Grace::seconds(60).unwrap());
        assert_eq!(source.token_use(&old, now), None);
        assert_eq!(source.token_use(&new, Utc::now()), Some(TokenUse::Previous));
        source.rotate();
        assert!(source.previous_token.is_none());
        assert_eq!(source.token_hashes().count(), 1);
    }

    #[test]
    fn grace_and_rate_limit_are_bounded() {
        assert!(Grace::seconds(Grace::MAX_S + 1).is_err());
        let (mut source, _) = Source::create("shop", None, None).unwrap();
        let bad = RateLimit { per_s: 0, burst: 5 };
        assert!(source.set_rate_limit(Some(bad)).is_err());
        let good = RateLimit {
            per_s: 5,
            burst: 10,
        };
        source.set_rate_limit(Some(good)).unwrap();
        assert_eq!(source.rate_limit, Some(good));
    }
}
