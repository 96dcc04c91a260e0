//! Applying a batch exactly once: claim the version's checkpoint, apply, advance the checkpoint,
//! all in one transaction; a batch with a poison event is applied up to it.
//!
//! The transaction first checks the leader's lease (its fence: the epoch it took, not lapsed,
//! its row held until the commit), so a leader that lost its lease commits nothing; then it
//! locks the version's registry row and checks the checkpoint is still the one the batch was
//! read from: even two projectors that both believe they lead can never apply a batch twice. A crash at any point rolls the whole batch back, effects and checkpoint
//! together, and the next step reads it again.

use std::time::Duration;

use runledger_store::{Fence, LogCursor, RecordedEvent};
use sqlx::PgConnection;

use crate::published::{self, Applied, Position};
use crate::registry::VersionStatus;

use super::Projector;
use crate::error::{ApplyError, ProjectionError, Result};
use crate::projection::{ApplyTx, ProjectedEvent, Projection, fail_at};
use crate::registry::{self, ProjectionVersion, stored_tx_id};

/// What applying one version's batch came to.
pub(super) enum BatchResult {
    Applied(usize),
    Halted {
        applied: usize,
        position: i64,
    },
    /// The lease was lost, or the checkpoint moved under us (another projector applied it).
    Lost,
}

impl<P: Projection> Projector<P> {
    /// Decodes and applies a batch read from `version`'s checkpoint. A poison event (one that
    /// does not decode, or fails to apply on its own) is recorded and halts the version; the
    /// events before it are applied.
    pub(super) async fn apply_batch(
        &mut self,
        version: &ProjectionVersion,
        batch: Vec<RecordedEvent>,
    ) -> Result<BatchResult> {
        let mut events = Vec::with_capacity(batch.len());
        let mut undecodable = None;
        for recorded in batch {
            match recorded.decode() {
                Ok(event) => events.push(ProjectedEvent { recorded, event }),
                Err(error) => {
                    undecodable = Some((recorded, error.to_string()));
                    break;
                }
            }
        }
        let mut checkpoint = version.checkpoint;
        let mut applied = 0;
        if !events.is_empty() {
            match self.commit_batch(version, checkpoint, &events).await {
                Ok(true) => {
                    applied = events.len();
                    checkpoint = LogCursor::after(&events[events.len() - 1].recorded);
                }
                Ok(false) => return Ok(BatchResult::Lost),
                Err(ApplyError::Failed(error)) => return Err(error),
                // One event of the batch cannot be applied: apply them one at a time to find it,
                // so that every event before it is applied.
                Err(ApplyError::Poison(_)) => {
                    for event in &events {
                        match self
                            .commit_batch(version, checkpoint, std::slice::from_ref(event))
                            .await
                        {
                            Ok(true) => {
                                applied += 1;
                                checkpoint = LogCursor::after(&event.recorded);
                            }
                            Ok(false) => return Ok(BatchResult::Lost),
                            Err(ApplyError::Failed(error)) => return Err(error),
                            Err(ApplyError::Poison(reason)) => {
                                return self
                                    .halt(version, checkpoint, &event.recorded, &reason, applied)
                                    .await;
                            }
                        }
                    }
                }
            }
        }
        match undecodable {
            Some((recorded, reason)) => {
                self.halt(version, checkpoint, &recorded, &reason, applied)
                    .await
            }
            None => Ok(BatchResult::Applied(applied)),
        }
    }

    /// Applies `events` to `version` and advances its checkpoint from `from`, in one
    /// transaction. False when the checkpoint is no longer `from` (another projector moved it).
    async fn commit_batch(
        &mut self,
        version: &ProjectionVersion,
        from: LogCursor,
        events: &[ProjectedEvent],
    ) -> Result<bool, ApplyError> {
        let fail_point = self.options.fail_point.as_ref();
        let mut tx = self.pool.begin().await.map_err(ProjectionError::from)?;
        fail_at(fail_point, "begin")?;
        if !claim(
            &mut tx,
            version.id,
            from,
            self.leadership.fence().as_ref(),
            self.leadership.idle_limit(),
        )
        .await?
        {
            return Ok(false);
        }
        fail_at(fail_point, "claim")?;
        self.projection
            .apply(
                events,
                &mut ApplyTx {
                    conn: &mut tx,
                    fail_point,
                },
            )
            .await?;
        let last = LogCursor::after(&events[events.len() - 1].recorded);
        sqlx::query(
            // Qualified: `search_path` is the version's schema in this transaction.
            "UPDATE public.projection_versions SET checkpoint_tx_id = $2, checkpoint_position = $3, \
                    events_applied = events_applied + $4, updated_at = now() \
             WHERE id = $1",
        )
        .bind(version.id)
        .bind(stored_tx_id(last))
        .bind(last.position)
        .bind(events.len() as i64)
        .execute(&mut *tx)
        .await
        .map_err(ProjectionError::from)?;
        fail_at(fail_point, "checkpoint")?;
        // Only the active version's progress is visible to readers.
        let applied = (version.status == VersionStatus::Active).then(|| Applied {
            projection: self.definition.name.to_owned(),
            position: Position {
                version: version.id,
                checkpoint: last,
            },
            runs: Some(changed_runs(events)),
        });
        if let Some(applied) = &applied {
            published::notify(&mut tx, applied).await?;
        }
        tx.commit().await.map_err(ProjectionError::from)?;
        if let Some(applied) = applied {
            self.published.publish(applied);
        }
        self.stats.events_applied += events.len() as u64;
        self.stats.batches += 1;
        // After the commit: a crash here must not apply the batch again.
        fail_at(fail_point, "committed")?;
        Ok(true)
    }
}

/// The runs `events` belong to, each once, in the order they first appear.
fn changed_runs(
    events: &[ProjectedEvent],
) -> Vec<(runledger_core::TenantId, runledger_core::RunId)> {
    let mut seen = std::collections::HashSet::new();
    events
        .iter()
        .map(|event| (event.recorded.tenant_id, event.recorded.run_id))
        .filter(|run| seen.insert(*run))
        .collect()
}

/// Locks `version`'s registry row, checks its checkpoint is still `from` (and that it is live
/// and not halted), sets `search_path` to its schema for the rest of the transaction, then
/// checks the leader's `fence` (false without one).
///
/// The transaction is also ended by the server once it sits idle for `idle_limit` (half the
/// lease): a leader paused mid-batch would otherwise hold the lease's row and the version's
/// row locked, and the log's safe horizon back, for as long as it is paused, and no other
/// projector could take over.
///
/// The transaction also commits without waiting for the WAL flush (`synchronous_commit` off):
/// a crash may lose the last few batches, but always their effects together with their
/// checkpoint, which are then applied again. Exactly-once holds; durability of a derived table
/// is not worth a disk flush per batch.
pub(super) async fn claim(
    tx: &mut PgConnection,
    version: i64,
    from: LogCursor,
    fence: Option<&Fence>,
    idle_limit: Duration,
) -> Result<bool> {
    let Some(fence) = fence else {
        return Ok(false);
    };
    let claimed: Option<(i64, i64)> = sqlx::query_as(
        "SELECT checkpoint_tx_id, checkpoint_position \
         FROM (SELECT checkpoint_tx_id, checkpoint_position, \
                      set_config('search_path', schema_name, true), \
                      set_config('synchronous_commit', 'off', true), \
                      set_config('idle_in_transaction_session_timeout', $2, true) \
               FROM projection_versions \
               WHERE id = $1 AND status IN ('active', 'building') AND halted_position IS NULL \
               FOR UPDATE) AS claimed",
    )
    .bind(version)
    .bind(idle_limit.as_millis().max(1).to_string())
    .fetch_optional(&mut *tx)
    .await?;
    if claimed.is_none_or(|(tx_id, position)| registry::cursor(tx_id, position) != from) {
        return Ok(false);
    }
    // After the statement that sets the idle limit: no lock of this transaction is ever held
    // without it (a leader paused between the two would otherwise hold the lease's row for as
    // long as it is paused, and no standby could take the lease).
    if !fence.check(tx).await? {
        tracing::warn!(
            epoch = fence.epoch(),
            "the lease was lost: the batch is not committed"
        );
        return Ok(false);
    }
    Ok(true)
}
