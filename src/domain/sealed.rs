//! Signing secrets at rest. A verifier needs the secret itself, so it
//! cannot be kept as a hash as tokens are: it is encrypted with
//! ChaCha20-Poly1305 under a key that is not in the store (`INLET_SECRET_KEY`
//! or the data dir's `secret.key`, loaded by `app`). The source id is the
//! associated data, so a sealed secret copied onto another source does not
//! open. A copied database alone exposes no secret; the database with the
//! key does (docs/architecture.md, docs/security.md).

use crate::domain::ids::SourceId;
use crate::domain::signature::SigningSecret;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

/// The key that seals signing secrets. Its `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey([u8; KEY_BYTES]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Why a key's text was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "the secret key must be 64 hex characters (32 bytes): make one with `openssl rand -hex 32`"
)]
pub struct BadKey;

/// Encryption refused the secret (only past ChaCha's message limit).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("a signing secret could not be encrypted")]
pub struct SealError;

/// Why a sealed secret did not open: the key is not the one it was sealed
/// with, or the stored bytes were changed.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("a signing secret cannot be decrypted: the secret key (INLET_SECRET_KEY or the data dir's secret.key) is not the one it was set with")]
pub struct OpenError;

impl SecretKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Reads the key as `encode` writes it (hex, surrounding space ignored).
    pub fn parse(text: &str) -> Result<Self, BadKey> {
        let text = text.trim().as_bytes();
        if text.len() != KEY_BYTES * 2 {
            return Err(BadKey);
        }
        let mut bytes = [0u8; KEY_BYTES];
        for (out, pair) in bytes.iter_mut().zip(text.chunks(2)) {
            let hex = std::str::from_utf8(pair).map_err(|_| BadKey)?;
            *out = u8::from_str_radix(hex, 16).map_err(|_| BadKey)?;
        }
        Ok(Self(bytes))
    }

    /// Lowercase hex, for the key file.
    pub fn encode(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.0))
    }

    /// Encrypts `secret` for `source`, with a fresh random nonce.
    pub fn seal(
        &self,
        source: SourceId,
        secret: &[u8],
        set_at: DateTime<Utc>,
    ) -> Result<SealedSecret, SealError> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let aad = source.to_string();
        // Encryption fails only for messages past ChaCha's 256 GiB limit.
        let ciphertext = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError)?;
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(SealedSecret {
            set_at,
            nonce: b64.encode(nonce),
            ciphertext: b64.encode(ciphertext),
        })
    }

    /// Decrypts a secret sealed for `source`.
    pub fn open(
        &self,
        source: SourceId,
        sealed: &SealedSecret,
    ) -> Result<SigningSecret, OpenError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let nonce = b64.decode(&sealed.nonce).map_err(|_| OpenError)?;
        let ciphertext = b64.decode(&sealed.ciphertext).map_err(|_| OpenError)?;
        if nonce.len() != NONCE_BYTES {
            return Err(OpenError);
        }
        let aad = source.to_string();
        self.cipher()
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map(SigningSecret::new)
            .map_err(|_| OpenError)
    }
}

/// A signing secret as stored: encrypted, with when it was set (the only
/// thing about it the API and dashboard show).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedSecret {
    pub set_at: DateTime<Utc>,
    pub nonce: String,
    pub ciphertext: String,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("set_at", &self.set_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_source_only() {
        let key = SecretKey::generate();
        let source = SourceId::new();
        let sealed = key.seal(source, b"whsec_top-secret", Utc::now()).unwrap();
        let stored = serde_json::to_string(&sealed).unwrap();
        assert!(!stored.contains("top-secret"));
        assert_eq!(
            key.open(source, &sealed).unwrap().expose(),
            b"whsec_top-secret"
        );
        assert_eq!(key.open(SourceId::new(), &sealed), Err(OpenError));
        assert_eq!(SecretKey::generate().open(source, &sealed), Err(OpenError));
    }

    #[test]
    fn two_seals_of_one_secret_differ() {
        let key = SecretKey::generate();
        let source = SourceId::new();
        let (a, b) = (
            key.seal(source, b"same", Utc::now()).unwrap(),
            key.seal(source, b"same", Utc::now()).unwrap(),
        );
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn a_key_survives_its_text_and_hides_in_debug() {
        let key = SecretKey::generate();
        let text = key.encode();
        assert_eq!(SecretKey::parse(&format!(" {text}\n")).unwrap().0, key.0);
        assert_eq!(SecretKey::parse("abc").unwrap_err(), BadKey);
        assert!(!format!("{key:?}").contains(&text[..8]));
        let sealed = key.seal(SourceId::new(), b"x", Utc::now()).unwrap();
        assert!(!format!("{sealed:?}").contains(&sealed.ciphertext));
    }
}
