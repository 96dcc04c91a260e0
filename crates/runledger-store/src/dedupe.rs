//! Rebuilding the inline dedupe index (`active_runs`) from the log, while appends go on.
//!
//! `active_runs` is derived state written by the store's append statement, one row per queued or
//! running run. If it were ever lost or damaged, it can be recomputed from the events: the runs
//! with a `Queued` and no `Completed`, keyed by the identity hash of their `Queued`. The rebuild
//! lives in the store, beside the append that writes the index inline, and decodes the `Queued`
//! events as every reader does ([`RecordedEvent::decode`], with its upcasting).
//!
//! Every append statement writes `active_runs` (taking or freeing a slot, or planning to), so it
//! takes a ROW EXCLUSIVE lock on it. The rebuild holds SHARE ROW EXCLUSIVE for its transaction:
//! appends that started before it have committed when it reads the events, and later ones wait
//! until it commits. There is no moment in which two active runs can share an identity.

use std::collections::{HashMap, HashSet};

use runledger_core::RunEvent;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::StoreError;
use crate::read::{EventRow, event_columns, into_events};
use crate::schema::RecordedEvent;

/// What a dedupe index rebuild changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupeRebuild {
    /// Active runs in the rebuilt index.
    pub active: usize,
    /// Rows the index lacked.
    pub added: usize,
    /// Rows it had that the log does not support.
    pub removed: usize,
}

/// One row of `active_runs`: tenant, identity hash, run.
type Slot = (i64, String, Uuid);

/// Recomputes `active_runs` from the events in one transaction, blocking appends for its
/// duration (a scan of the `Queued` events).
///
/// # Errors
/// [`StoreError::Decode`] when a `Queued` event does not decode;
/// [`StoreError::DedupeConflict`] when the log itself has two active runs with one identity
/// (the index is then left as it was); [`StoreError::Database`] when the database fails.
pub async fn rebuild_dedupe_index(pool: &PgPool) -> Result<DedupeRebuild, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE active_runs IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<EventRow> = sqlx::query_as(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events \
         WHERE event_type = 'Queued' \
           AND NOT EXISTS (SELECT 1 FROM events c \
                           WHERE c.run_id = events.run_id AND c.event_type = 'Completed')"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let queued = into_events(rows)?;
    let mut wanted: HashMap<(i64, String), Uuid> = HashMap::with_capacity(queued.len());
    for recorded in &queued {
        let RunEvent::Queued(queued) = recorded.decode()? else {
            return Err(not_queued(recorded));
        };
        let key = (queued.tenant_id.get(), queued.run_identity_hash.to_hex());
        if let Some(other) = wanted.insert(key.clone(), queued.run_id.as_uuid()) {
            return Err(StoreError::DedupeConflict {
                tenant: key.0,
                identity_hash: key.1,
                runs: [other, queued.run_id.as_uuid()],
            });
        }
    }
    let current: HashSet<Slot> =
        sqlx::query_as("SELECT tenant_id, run_identity_hash, run_id FROM active_runs")
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    let wanted: HashSet<Slot> = wanted
        .into_iter()
        .map(|((tenant, hash), run)| (tenant, hash, run))
        .collect();
    let removed: Vec<&Slot> = current.difference(&wanted).collect();
    let added: Vec<&Slot> = wanted.difference(&current).collect();
    sqlx::query(
        "DELETE FROM active_runs a USING unnest($1::bigint[], $2::text[], $3::uuid[]) AS r(t, h, run) \
         WHERE a.tenant_id = r.t AND a.run_identity_hash = r.h AND a.run_id = r.run",
    )
    .bind(removed.iter().map(|s| s.0).collect::<Vec<_>>())
    .bind(removed.iter().map(|s| s.1.as_str()).collect::<Vec<_>>())
    .bind(removed.iter().map(|s| s.2).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO active_runs (tenant_id, run_identity_hash, run_id) \
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::uuid[])",
    )
    .bind(added.iter().map(|s| s.0).collect::<Vec<_>>())
    .bind(added.iter().map(|s| s.1.as_str()).collect::<Vec<_>>())
    .bind(added.iter().map(|s| s.2).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    let rebuilt = DedupeRebuild {
        active: wanted.len(),
        added: added.len(),
        removed: removed.len(),
    };
    tx.commit().await?;
    if rebuilt.added + rebuilt.removed > 0 {
        tracing::warn!(
            ?rebuilt,
            "the dedupe index differed from the log and was repaired"
        );
    }
    Ok(rebuilt)
}

/// A stored `Queued` event that decodes to another kind of event (no known schema does that).
fn not_queued(recorded: &RecordedEvent) -> StoreError {
    StoreError::Decode {
        position: recorded.position,
        event_type: recorded.event_type.clone(),
        schema_version: recorded.schema_version,
        reason: "does not decode to a Queued event".to_owned(),
    }
}
