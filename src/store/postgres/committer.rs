//! Group commit on PostgreSQL (stub: replaced by the log's committer).

use crate::store::commit::FlushStats;

#[derive(Default)]
pub struct Committer {
    stats: FlushStats,
}

impl Committer {
    pub fn stop(&self) {}

    pub fn stats(&self) -> &FlushStats {
        &self.stats
    }
}
