//! Dashboard sessions as the store keeps them (see `http::dashboard::session`
//! for the cookie): started, checked, ended, and the one-time flash slot.

use crate::domain::ids::SourceId;
use crate::domain::sealed::SecretKey;
use crate::domain::source::{new_token, SecretHash};
use crate::store::{SessionFlash, SessionRecord, StateStore, Store, StoreResult};
use chrono::{Duration, Utc};
use std::sync::Arc;

/// A one-time value an action made, kept server-side in the session until
/// the page the action redirects to shows it. Never in a cookie or the URL:
/// a webhook URL *is* the source's secret. One slot per session, so a
/// session holds at most one such value however many actions it takes.
#[derive(Clone, Debug, PartialEq)]
pub enum Flash {
    /// The webhook URL a create or rotate just made, for that source's page.
    WebhookUrl { source_id: String, url: String },
}

/// Every live session, kept by the store (so every node of one PostgreSQL
/// database sees a login or logout at once; the embedded store keeps them
/// in memory) under the SHA-256 of the id: a lookup then never compares
/// the secret itself, so its timing tells nothing about valid ids, and a
/// reader of the database cannot use what it finds there as a cookie.
pub struct Sessions {
    store: Store,
    /// Seals the flash slot's webhook URL before it reaches the store.
    key: Arc<SecretKey>,
}

impl Sessions {
    pub fn new(store: Store, key: Arc<SecretKey>) -> Self {
        Self { store, key }
    }

    /// Starts a session lasting `minutes`; returns the id for the cookie.
    pub fn start(&self, minutes: i64) -> StoreResult<String> {
        let id = new_token();
        let session = SessionRecord {
            csrf: new_token(),
            expires: Utc::now() + Duration::minutes(minutes.max(1)),
        };
        self.store.start_session(&key_of(&id), &session)?;
        Ok(id)
    }

    /// The CSRF token of a live session, `None` when unknown or expired;
    /// `Err` when the store cannot say (the database is away).
    pub fn csrf_or_unavailable(&self, id: &str) -> StoreResult<Option<String>> {
        let session = self.store.live_session(&key_of(id), Utc::now())?;
        Ok(session.map(|s| s.csrf))
    }

    /// As [`Sessions::csrf_or_unavailable`], a store failure counting as no
    /// session (logged): for pages that only show whether one is logged in.
    pub fn csrf_of(&self, id: &str) -> Option<String> {
        self.csrf_or_unavailable(id).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "session lookup failed; treated as logged out");
            None
        })
    }

    /// Whether `id` is a live session (not ended, not expired). Long-lived
    /// responses (the live tail) ask this again as they go; a store that
    /// cannot answer ends them (the tail cannot go on without it anyway).
    pub fn is_live(&self, id: &str) -> bool {
        self.csrf_of(id).is_some()
    }

    /// Keeps `flash` for the next page of session `id` (replacing any
    /// earlier one not yet shown), sealed for its source. When it cannot
    /// be kept (logged) the page shows no URL; rotating again makes one.
    pub fn set_flash(&self, id: &str, flash: Flash) {
        if let Err(e) = self.try_set_flash(id, flash) {
            tracing::warn!(error = %e, "could not keep the webhook URL for the next page");
        }
    }

    fn try_set_flash(&self, id: &str, flash: Flash) -> Result<(), String> {
        let Flash::WebhookUrl { source_id, url } = flash;
        let source: SourceId = source_id
            .parse()
            .map_err(|_| "not a source id".to_string())?;
        let sealed = self
            .key
            .seal(source, url.as_bytes(), Utc::now())
            .map_err(|e| e.to_string())?;
        self.store
            .set_session_flash(&key_of(id), &SessionFlash { source, sealed })
            .map_err(|e| e.to_string())
    }

    /// The webhook URL waiting for `source_id`'s page, removed as it is
    /// read: a reload of that page no longer shows it. A flash for another
    /// source stays where it is.
    pub fn take_webhook_url(&self, id: &str, source_id: &str) -> Option<String> {
        let source: SourceId = source_id.parse().ok()?;
        let sealed = match self.store.take_session_flash(&key_of(id), source) {
            Ok(sealed) => sealed?,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the webhook URL kept for this page");
                return None;
            }
        };
        match self.key.open(source, &sealed) {
            Ok(url) => String::from_utf8(url.expose().to_vec()).ok(),
            Err(e) => {
                tracing::warn!(error = %e, "the webhook URL kept for this page does not open");
                None
            }
        }
    }

    pub fn end(&self, id: &str) -> StoreResult<()> {
        self.store.end_session(&key_of(id))
    }
}

/// The store's key of a session: the SHA-256 of its id.
fn key_of(id: &str) -> SecretHash {
    SecretHash::of(id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        let store = Store::temporary().expect("store");
        Sessions::new(store, Arc::new(SecretKey::generate()))
    }

    #[test]
    fn sessions_start_check_and_end() {
        let sessions = sessions();
        let id = sessions.start(5).expect("start");
        assert!(id.len() >= 43, "256-bit id");
        assert!(sessions.csrf_of(&id).is_some());
        assert!(sessions.csrf_of("forged").is_none());
        sessions.end(&id).expect("end");
        assert!(sessions.csrf_of(&id).is_none());
    }

    #[test]
    fn a_flash_is_shown_once_and_only_on_its_sources_page() {
        let sessions = sessions();
        let id = sessions.start(5).expect("start");
        let (a, b) = (SourceId::new().to_string(), SourceId::new().to_string());
        let flash = Flash::WebhookUrl {
            source_id: a.clone(),
            url: "http://x/hooks/t".into(),
        };
        sessions.set_flash(&id, flash);
        assert_eq!(sessions.take_webhook_url(&id, &b), None);
        assert_eq!(
            sessions.take_webhook_url(&id, &a).as_deref(),
            Some("http://x/hooks/t")
        );
        assert_eq!(sessions.take_webhook_url(&id, &a), None, "once");
    }
}
