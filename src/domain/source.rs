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
        };
        Ok((source, token))
    }

    /// Replaces the token; returns the new clear-text token.
    pub fn rotate(&mut self) -> String {
        let token = new_token();
        self.token_hash = SecretHash::of(token.as_bytes());
        self.updated_at = Utc::now();
        token
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
}
