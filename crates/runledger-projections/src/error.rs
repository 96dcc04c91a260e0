//! Errors of the projections: one for callers, and the apply error that tells a poison event
//! from a failure worth retrying.

use runledger_store::StoreError;

/// A projection operation that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// No projection of that name is known to this code.
    #[error("unknown projection {0}")]
    UnknownProjection(String),
    /// The projection has no active version yet (no projector has ever run it).
    #[error("projection {0} has no active version")]
    NotInstalled(String),
    /// No poison event of that projection is recorded at that position.
    #[error("projection {projection} has no poison event at position {position}")]
    NoPoisonEvent {
        /// The projection.
        projection: String,
        /// The position asked for.
        position: i64,
    },
    /// A failure injected by a test at a statement boundary (see [`crate::FailPoint`]).
    #[error("injected failure at {0}")]
    Injected(&'static str),
    /// Reading the log failed; the step may be retried.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database failed or could not be reached; the step may be retried.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// Why a batch did not apply.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The data of an event cannot be applied (it does not decode, breaks a constraint of the
    /// read model, does not follow the row's version): retrying will not help. The runtime
    /// isolates the event, records it as poison and halts the version.
    #[error("{0}")]
    Poison(String),
    /// Anything else (a lost connection, an injected failure): the batch is rolled back and
    /// retried by the next step.
    #[error(transparent)]
    Failed(#[from] ProjectionError),
}

impl From<sqlx::Error> for ApplyError {
    /// Errors about the data (SQLSTATE classes 22 and 23, and exceptions raised by triggers)
    /// are poison; every other database error is worth retrying.
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error
            && let Some(code) = db.code()
            && (code.starts_with("22") || code.starts_with("23") || code == "P0001")
        {
            return ApplyError::Poison(format!("{} (SQLSTATE {code})", db.message()));
        }
        ApplyError::Failed(ProjectionError::Database(error))
    }
}

/// Results of this crate.
pub type Result<T, E = ProjectionError> = std::result::Result<T, E>;
