//! The audit status: the newest anchor, how far the log has moved past it, and the last
//! verification, which `runledger verify` records (append-only) when it checks the database.

use chrono::{DateTime, Utc};
use runledger_store::{EventReader, LogCursor};
use sqlx::PgPool;

use crate::anchor::{Anchor, latest_anchor};
use crate::error::AuditError;
use crate::verify::Report;

/// Records a verification of the database.
///
/// # Errors
/// On a database failure.
pub async fn record_verification(
    pool: &PgPool,
    scope: &str,
    report: &Report,
) -> Result<(), AuditError> {
    let failures = report.broken_runs.len() + report.anchor_failures.len();
    sqlx::query(
        "INSERT INTO verifications (scope, runs, events, anchors_checked, failures, valid, \
                                    first_failure) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(scope)
    .bind(i64::try_from(report.runs).unwrap_or(i64::MAX))
    .bind(i64::try_from(report.events).unwrap_or(i64::MAX))
    .bind(i64::try_from(report.anchors_checked).unwrap_or(i64::MAX))
    .bind(i64::try_from(failures).unwrap_or(i64::MAX))
    .bind(report.is_valid())
    .bind(report.problems().next())
    .execute(pool)
    .await?;
    Ok(())
}

/// A recorded verification.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Verification {
    /// When it finished (database clock).
    pub recorded_at: DateTime<Utc>,
    /// What it covered.
    pub scope: String,
    /// Runs seen.
    pub runs: i64,
    /// Events checked.
    pub events: i64,
    /// Anchors checked.
    pub anchors_checked: i64,
    /// Broken runs and failed anchors.
    pub failures: i64,
    /// Whether everything verified.
    pub valid: bool,
    /// The first problem found.
    pub first_failure: Option<String>,
}

/// Where auditing stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditStatus {
    /// The newest anchor.
    pub last_anchor: Option<Anchor>,
    /// Events committed after it (all of them when there is none).
    pub events_after_last_anchor: u64,
    /// The newest recorded verification.
    pub last_verification: Option<Verification>,
}

/// Where auditing stands now.
///
/// # Errors
/// On a database failure.
pub async fn status(pool: &PgPool) -> Result<AuditStatus, AuditError> {
    let last_anchor = latest_anchor(pool).await?;
    let after = last_anchor
        .as_ref()
        .map_or(LogCursor::START, |anchor| anchor.cursor);
    let events_after_last_anchor = EventReader::new(pool.clone())
        .count_events(after, None, u64::MAX)
        .await?;
    let last_verification = sqlx::query_as(
        "SELECT recorded_at, scope, runs, events, anchors_checked, failures, valid, first_failure \
         FROM verifications ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(AuditStatus {
        last_anchor,
        events_after_last_anchor,
        last_verification,
    })
}
