//! The one error type of the store, whichever backend answers.

use crate::domain::ids::EventId;

/// A storage failure. Callers turn it into a 500 (a 503 when the database
/// is unreachable, see [`StoreError::is_unavailable`]) and a log line. Every
/// variant keeps what caused it (`source()` walks down to the io or sled
/// error), so the log line says what the disk said.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A file operation of the store (the event log, the database rewrite,
    /// a temporary dir) failed; `what` says which.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("corrupt record in {tree}: {source}")]
    Corrupt {
        tree: &'static str,
        source: serde_json::Error,
    },
    /// A stored value whose bytes do not have the layout the store wrote
    /// (too short, a profile id that is not 16 bytes): `what` says which.
    #[error("corrupt record in {tree}: {what}")]
    Malformed {
        tree: &'static str,
        what: &'static str,
    },
    /// An event's record could not be read from the event log.
    #[error("cannot read event {id} from the event log: {source}")]
    ReadEvent { id: EventId, source: std::io::Error },
    /// A write was asked of a view that only reads (the identity preview).
    #[error("{0} is read-only")]
    ReadOnly(&'static str),
    /// A value could not be encoded for storage (a schema snapshot).
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    /// A transaction's closure gave up with an error that is not a
    /// `StoreError` (sled's typed abort); the text is that error's.
    #[error("transaction aborted: {0}")]
    Aborted(String),
    /// A lock guarding in-memory state was poisoned by a panic while held:
    /// the state may be half-updated, so the store refuses to go on with it.
    #[error("{0} lock poisoned")]
    Poisoned(&'static str),
    /// The erasure's values could not be compiled for searching.
    #[error("erasure search: {0}")]
    Search(#[from] crate::domain::redact::NeedlesError),
    /// A part of the store's machinery that does the work asked for (the
    /// pipeline's committer thread) has stopped: the work was not done.
    #[error("{0} stopped")]
    Stopped(&'static str),
    /// PostgreSQL answered with an error (a constraint, a bad statement).
    #[error("postgres: {0}")]
    Database(sqlx::Error),
    /// PostgreSQL cannot be reached (refused, dropped, no connection free
    /// in time): the work was not done and may be retried when it is back.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Another node already processed the batch this node was committing
    /// (it lost the processing lease meanwhile): nothing was written.
    #[error("another node processed these events first; nothing was written")]
    Fenced,
    /// A stored schema's migrations are newer than this binary.
    #[error("migrating the database: {0}")]
    Migrate(String),
    /// Not provided by this backend yet.
    #[error("{0} is not implemented by this backend yet")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Whether the backend could not be reached at all (answer 503 with
    /// `Retry-After`, not 500): the caller may try again shortly.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// An io failure of `what`, for `map_err`.
    pub(crate) fn io(what: &'static str) -> impl Fn(std::io::Error) -> StoreError + Copy {
        move |source| StoreError::Io { what, source }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A PostgreSQL error: unreachable (the connection is refused, dropped or
/// none is free in time) or an error PostgreSQL answered with.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(ref db) if is_unavailable_code(db.code().as_deref()) => {
                StoreError::Unavailable(e.to_string())
            }
            other => StoreError::Database(other),
        }
    }
}

/// SQLSTATEs that mean "the server is going away or not ready", not "your
/// statement is wrong": class 08 (connection), 57P01-57P03 (admin
/// shutdown, crash shutdown, cannot connect now), 53 (insufficient
/// resources).
fn is_unavailable_code(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c.starts_with("53"))
}
