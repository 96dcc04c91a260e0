//! Errors of the store and of the command path.

use runledger_core::{RunId, RunRejection};

/// An append or read that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The run's stream is not at the version the caller expected; nothing was written.
    /// Callers that did not pin a version re-read and decide again; others answer 409/412.
    #[error("run {run} is at version {actual}, not the expected {expected}")]
    Conflict {
        /// The run.
        run: RunId,
        /// The version the caller expected.
        expected: u64,
        /// The version it is at.
        actual: u64,
    },
    /// An event id of the append is already stored with different content (or for another run):
    /// an idempotency key reused for a different request. Nothing was written.
    #[error("event id {event_id} is already stored with different content")]
    IdempotencyMismatch {
        /// The reused event id.
        event_id: uuid::Uuid,
    },
    /// The append had no events, or events of more than one run; a caller bug.
    #[error("invalid append: {0}")]
    InvalidAppend(&'static str),
    /// A stored event this code cannot decode (an unknown type or schema version).
    #[error(
        "cannot decode event at position {position} ({event_type} v{schema_version}): {reason}"
    )]
    Decode {
        /// Where it is stored.
        position: i64,
        /// Its stored type.
        event_type: String,
        /// Its stored schema version.
        schema_version: i32,
        /// Why it does not decode.
        reason: String,
    },
    /// The log itself has two active runs with one tenant and identity: the dedupe index cannot
    /// be rebuilt from it, and is left as it was.
    #[error("runs {runs:?} of tenant {tenant} are both active with identity {identity_hash}")]
    DedupeConflict {
        /// The tenant.
        tenant: i64,
        /// The shared identity hash.
        identity_hash: String,
        /// The two runs.
        runs: [uuid::Uuid; 2],
    },
    /// The database failed or could not be reached; the append may be retried with the same
    /// event ids, which is safe.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The connection was lost while the append committed, and the database could not be
    /// reached again to learn whether it did: its events may or may not be stored. Re-sending
    /// the same event ids is safe: it stores them once, or returns where they were stored.
    #[error("the outcome of the append is unknown: the connection was lost while it committed")]
    OutcomeUnknown,
}

/// A command that was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The domain refused it (HTTP 409 for a wrong status, 422 for bad counts); never retried.
    #[error(transparent)]
    Rejected(#[from] RunRejection),
    /// The caller pinned a version and the run has moved on (HTTP 412); or unpinned retries ran
    /// out under extreme contention (HTTP 409). Re-read and decide again.
    #[error("run {run} is at version {actual}, not the expected {expected}")]
    Conflict {
        /// The run.
        run: RunId,
        /// The version the caller expected.
        expected: u64,
        /// The version it is at.
        actual: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict {
                run,
                expected,
                actual,
            } => CommandError::Conflict {
                run,
                expected,
                actual,
            },
            other => CommandError::Store(other),
        }
    }
}

/// Whether an error means the connection is gone or none could be had (the server is down,
/// unreachable, shutting down, or the pool timed out), rather than that a statement failed on a
/// connection that still works. The group writer gives such a connection up; the API answers
/// 503 for it.
///
/// A server that no longer takes writes (25006, a standby, or a primary demoted behind a
/// failover manager) counts as lost too: the primary is elsewhere, and a connection to it will
/// be found (docs/adr/0028).
pub fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exception; 57P: the server shuts down or ended the session;
            // 25006: read_only_sql_transaction.
            code.starts_with("08") || code.starts_with("57P") || code == "25006"
        }),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

impl StoreError {
    /// Whether the database could not be reached (nothing was stored; retrying is safe), as
    /// opposed to [`StoreError::OutcomeUnknown`] or a failure of the request itself.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Database(error) if connection_lost(error))
    }
}
