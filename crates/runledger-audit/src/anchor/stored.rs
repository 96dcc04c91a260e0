//! The `anchors` table: reading stored anchors, and recording a new one that continues the
//! newest one's digests over the log after its cursor.

use chrono::{DateTime, Utc};
use runledger_store::{EventReader, LogCursor};
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};

use super::digest::LogDigest;
use super::model::Anchor;
use crate::LOG_BATCH;
use crate::error::AuditError;

/// The columns of `anchors`, as [`AnchorRow`] reads them.
macro_rules! anchor_columns {
    () => {
        "sequence, cursor_tx_id, cursor_position, event_count, run_count, tenants, recorded_at, \
         prev_hash, hash"
    };
}

#[derive(sqlx::FromRow)]
struct AnchorRow {
    sequence: i64,
    cursor_tx_id: i64,
    cursor_position: i64,
    event_count: i64,
    run_count: i64,
    tenants: Value,
    recorded_at: DateTime<Utc>,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl TryFrom<AnchorRow> for Anchor {
    type Error = AuditError;
    fn try_from(row: AnchorRow) -> Result<Self, AuditError> {
        let corrupt = |what: &str| AuditError::CorruptAnchor {
            sequence: row.sequence,
            reason: what.to_owned(),
        };
        let bytes32 = |bytes: &[u8], what: &str| -> Result<[u8; 32], AuditError> {
            bytes.try_into().map_err(|_| corrupt(what))
        };
        Ok(Anchor {
            sequence: row.sequence.unsigned_abs(),
            cursor: LogCursor {
                tx_id: row.cursor_tx_id.unsigned_abs(),
                position: row.cursor_position,
            },
            event_count: row.event_count.unsigned_abs(),
            run_count: row.run_count.unsigned_abs(),
            tenants: serde_json::from_value(row.tenants.clone())
                .map_err(|e| corrupt(&format!("tenants: {e}")))?,
            recorded_at: row.recorded_at,
            prev_hash: bytes32(&row.prev_hash, "prev_hash is not 32 bytes")?,
            hash: bytes32(&row.hash, "hash is not 32 bytes")?,
        })
    }
}

/// Every stored anchor, in sequence order.
///
/// # Errors
/// On a database failure, or a row that is not an anchor.
pub async fn stored_anchors(executor: impl PgExecutor<'_>) -> Result<Vec<Anchor>, AuditError> {
    let rows: Vec<AnchorRow> = sqlx::query_as(concat!(
        "SELECT ",
        anchor_columns!(),
        " FROM anchors ORDER BY sequence"
    ))
    .fetch_all(executor)
    .await?;
    rows.into_iter().map(Anchor::try_from).collect()
}

/// The newest stored anchor.
///
/// # Errors
/// On a database failure, or a row that is not an anchor.
pub async fn latest_anchor(executor: impl PgExecutor<'_>) -> Result<Option<Anchor>, AuditError> {
    let row: Option<AnchorRow> = sqlx::query_as(concat!(
        "SELECT ",
        anchor_columns!(),
        " FROM anchors ORDER BY sequence DESC LIMIT 1"
    ))
    .fetch_optional(executor)
    .await?;
    row.map(Anchor::try_from).transpose()
}

/// Records an anchor of the log as of now, unless the log has not moved past the newest anchor.
///
/// The anchor continues the newest one's digests from its cursor, so it reads only the events
/// after it. Anchorers in several processes take turns (a transaction-scoped advisory lock), so
/// each anchor chains on the one before it.
///
/// # Errors
/// On a database failure.
#[tracing::instrument(skip_all)]
pub async fn record_anchor(pool: &PgPool) -> Result<Option<Anchor>, AuditError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('runledger'), hashtext('anchors'))")
        .execute(&mut *tx)
        .await?;
    let previous = latest_anchor(&mut *tx).await?;
    let mut digest = previous
        .as_ref()
        .map(LogDigest::of_anchor)
        .unwrap_or_default();
    let reader = EventReader::new(pool.clone());
    let horizon = reader.horizon().await?;
    let mut walk = reader.walk_to(horizon, digest.cursor(), None, LOG_BATCH);
    let mut moved = false;
    while let Some(batch) = walk.next_batch().await? {
        moved = true;
        for event in &batch {
            digest.apply(event);
        }
    }
    if !moved {
        return Ok(None);
    }
    let recorded_at: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *tx)
        .await?;
    let anchor = Anchor::new(previous.as_ref(), &digest, recorded_at);
    sqlx::query(
        "INSERT INTO anchors (sequence, cursor_tx_id, cursor_position, event_count, run_count, \
                              tenants, recorded_at, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(as_i64(anchor.sequence))
    .bind(as_i64(anchor.cursor.tx_id))
    .bind(anchor.cursor.position)
    .bind(as_i64(anchor.event_count))
    .bind(as_i64(anchor.run_count))
    .bind(serde_json::to_value(&anchor.tenants).unwrap_or_else(|e| unreachable!("{e}")))
    .bind(anchor.recorded_at)
    .bind(anchor.prev_hash.to_vec())
    .bind(anchor.hash.to_vec())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(
        sequence = anchor.sequence,
        cursor = %anchor.cursor,
        events = anchor.event_count,
        "recorded an anchor"
    );
    Ok(Some(anchor))
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
