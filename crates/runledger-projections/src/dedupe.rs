//! Rebuilding the inline dedupe index (`active_runs`) from the log, while appends go on.
//!
//! `active_runs` is derived state written by the store's append statement, one row per queued or
//! running run. If it were ever lost or damaged, it can be recomputed from the events: the runs
//! with a `Queued` and no `Completed`, keyed by the identity hash of their `Queued`. The rebuild
//! lives here, with the other rebuilds of derived state; the store stays the only writer of
//! events.
//!
//! Every append statement writes `active_runs` (taking or freeing a slot, or planning to), so it
//! takes a ROW EXCLUSIVE lock on it. The rebuild holds SHARE ROW EXCLUSIVE for its transaction:
//! appends that started before it have committed when it reads the events, and later ones wait
//! until it commits. There is no moment in which two active runs can share an identity.

use std::collections::{HashMap, HashSet};

use runledger_core::RunEvent;
use runledger_store::StoreError;
use runledger_store::schema::decode_payload;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{ProjectionError, Result};

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
/// [`ProjectionError::Store`] when a `Queued` payload does not decode;
/// [`ProjectionError::DedupeConflict`] when the log itself has two active runs with one identity
/// (the index is then left as it was); [`ProjectionError::Database`] when the database fails.
pub async fn rebuild_dedupe_index(pool: &PgPool) -> Result<DedupeRebuild> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE active_runs IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let queued: Vec<(i64, i32, Value)> = sqlx::query_as(
        "SELECT q.position, q.schema_version, q.payload FROM events q \
         WHERE q.event_type = 'Queued' \
           AND NOT EXISTS (SELECT 1 FROM events c \
                           WHERE c.run_id = q.run_id AND c.event_type = 'Completed')",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut wanted: HashMap<(i64, String), Uuid> = HashMap::with_capacity(queued.len());
    for (position, schema_version, payload) in queued {
        let decode_error = |reason: String| StoreError::Decode {
            position,
            event_type: "Queued".to_owned(),
            schema_version,
            reason,
        };
        let RunEvent::Queued(queued) = decode_payload("Queued", schema_version, payload)
            .map_err(|e| ProjectionError::from(decode_error(e)))?
        else {
            unreachable!("a Queued payload decodes to a Queued event");
        };
        let key = (queued.tenant_id.get(), queued.run_identity_hash.to_hex());
        if let Some(other) = wanted.insert(key.clone(), queued.run_id.as_uuid()) {
            return Err(ProjectionError::DedupeConflict {
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
