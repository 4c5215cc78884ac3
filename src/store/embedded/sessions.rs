//! Dashboard sessions of the embedded backend: in memory, as before the
//! seam had them. One node serves the dashboard, so nothing needs to share
//! them; a restart logs everyone out, which is what it always did. The
//! admin token and the secret key stay in the data dir's files (`app`), so
//! the sharing calls answer with what they are given.

use super::Store;
use crate::domain::ids::SourceId;
use crate::domain::sealed::SealedSecret;
use crate::domain::source::SecretHash;
use crate::store::{SessionFlash, SessionRecord, SharedValue, StoreResult};
use chrono::{DateTime, Utc};
use dashmap::DashMap;

/// Every live session by the hash of its id, with its flash slot.
#[derive(Default)]
pub(super) struct MemorySessions {
    by_key: DashMap<String, (SessionRecord, Option<SessionFlash>)>,
}

impl Store {
    pub(super) fn start_session(
        &self,
        key: &SecretHash,
        session: &SessionRecord,
    ) -> StoreResult<()> {
        self.prune_sessions(Utc::now())?;
        self.sessions
            .by_key
            .insert(key.0.clone(), (session.clone(), None));
        Ok(())
    }

    pub(super) fn live_session(
        &self,
        key: &SecretHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRecord>> {
        let found = self.sessions.by_key.get(&key.0).map(|s| s.0.clone());
        match found {
            Some(session) if session.expires > now => Ok(Some(session)),
            Some(_) => {
                self.sessions.by_key.remove(&key.0);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    pub(super) fn end_session(&self, key: &SecretHash) -> StoreResult<()> {
        self.sessions.by_key.remove(&key.0);
        Ok(())
    }

    pub(super) fn set_session_flash(
        &self,
        key: &SecretHash,
        flash: &SessionFlash,
    ) -> StoreResult<()> {
        if let Some(mut session) = self.sessions.by_key.get_mut(&key.0) {
            session.1 = Some(flash.clone());
        }
        Ok(())
    }

    pub(super) fn take_session_flash(
        &self,
        key: &SecretHash,
        source: SourceId,
    ) -> StoreResult<Option<SealedSecret>> {
        let Some(mut session) = self.sessions.by_key.get_mut(&key.0) else {
            return Ok(None);
        };
        match session.1.take() {
            Some(flash) if flash.source == source => Ok(Some(flash.sealed)),
            other => {
                session.1 = other;
                Ok(None)
            }
        }
    }

    pub(super) fn prune_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let before = self.sessions.by_key.len();
        self.sessions.by_key.retain(|_, s| s.0.expires > now);
        Ok(before.saturating_sub(self.sessions.by_key.len()) as u64)
    }

    pub(super) fn share_admin_token(
        &self,
        proposed: &SecretHash,
        _configured: bool,
    ) -> StoreResult<SharedValue<SecretHash>> {
        Ok(SharedValue {
            value: proposed.clone(),
            ours: true,
        })
    }

    pub(super) fn share_key_canary(
        &self,
        proposed: &SealedSecret,
    ) -> StoreResult<SharedValue<SealedSecret>> {
        Ok(SharedValue {
            value: proposed.clone(),
            ours: true,
        })
    }

    pub(super) fn check_reachable(&self) -> StoreResult<()> {
        Ok(())
    }
}
