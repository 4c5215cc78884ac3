//! Requests on each source's rotated-out token (`domain::counters::OldTokenUse`),
//! in the `meta` tree under `old_token/` ‖ source id.

use super::{decode, encode, Store, StoreResult};
use crate::domain::counters::OldTokenUse;
use crate::domain::ids::SourceId;
use std::collections::HashMap;

const OLD_TOKEN_PREFIX: &[u8] = b"old_token/";

fn old_token_key(source: SourceId) -> Vec<u8> {
    [OLD_TOKEN_PREFIX, &source.to_bytes()].concat()
}

impl Store {
    /// Keeps the larger of what is stored and `used`: the request path
    /// writes without a lock, so two requests may write out of order.
    pub(super) fn put_old_token_use(
        &self,
        source: SourceId,
        used: &OldTokenUse,
    ) -> StoreResult<()> {
        let mut failed = None;
        self.trees
            .meta
            .fetch_and_update(old_token_key(source), |stored| {
                let stored: Option<OldTokenUse> = match stored.map(|b| decode("meta", b)) {
                    Some(Ok(stored)) => Some(stored),
                    Some(Err(e)) => {
                        // Unreadable: replaced by what the counter has now.
                        failed = Some(e);
                        None
                    }
                    None => None,
                };
                let keep = match stored {
                    Some(stored) if stored.requests >= used.requests => stored,
                    _ => *used,
                };
                Some(encode(&keep))
            })?;
        if let Some(e) = failed {
            tracing::warn!(error = %e, "an unreadable old-token count was replaced");
        }
        Ok(())
    }

    pub(super) fn clear_old_token_use(&self, source: SourceId) -> StoreResult<()> {
        self.trees.meta.remove(old_token_key(source))?;
        Ok(())
    }

    pub(super) fn old_token_uses(&self) -> StoreResult<HashMap<SourceId, OldTokenUse>> {
        let mut out = HashMap::new();
        for item in self.trees.meta.scan_prefix(OLD_TOKEN_PREFIX) {
            let (key, value) = item?;
            if let Some(id) = SourceId::from_slice(&key[OLD_TOKEN_PREFIX.len()..]) {
                out.insert(id, decode("meta", &value)?);
            }
        }
        Ok(out)
    }
}
