//! [`AuditError`]: why an audit could not run (as opposed to what it found, which is a report).

use runledger_store::StoreError;

/// An audit that could not be carried out. A tampered ledger is not an error: it is a
/// [`Report`](crate::verify::Report) that says so.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading the log failed (or a row does not decode).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another query failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The input is not an export (or an anchor file) this code can read.
    #[error("{0}")]
    NotAnExport(String),
    /// A scope that does not name what it means (a run without its tenant).
    #[error("{0}")]
    InvalidScope(String),
    /// A stored anchor row is not an anchor.
    #[error("anchor #{sequence} is not a valid anchor: {reason}")]
    CorruptAnchor {
        /// Its sequence.
        sequence: i64,
        /// What is wrong.
        reason: String,
    },
    /// Anchors digest whole tenants; they cannot be checked against part of one.
    #[error(
        "anchors digest whole tenants from the start of the log: they cannot be checked against \
         one run or a --since/--until range"
    )]
    AnchorsNeedWholeTenants,
}
