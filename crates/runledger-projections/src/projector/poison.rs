//! Poison events: an event a projection cannot apply is recorded in `projection_poison` and
//! halts its version, visibly, until an operator skips it; a skip passes the version over it.

use runledger_store::{LogCursor, RecordedEvent};

use super::Projector;
use super::batch::{BatchResult, claim};
use crate::error::Result;
use crate::projection::Projection;
use crate::registry::{ProjectionVersion, stored_tx_id};

impl<P: Projection> Projector<P> {
    /// Records the poison event `event` of `version` and halts the version at it.
    pub(super) async fn halt(
        &self,
        version: &ProjectionVersion,
        checkpoint: LogCursor,
        event: &RecordedEvent,
        reason: &str,
        applied: usize,
    ) -> Result<BatchResult> {
        let mut tx = self.pool.begin().await?;
        if !claim(
            &mut tx,
            version.id,
            checkpoint,
            self.leadership.fence().as_ref(),
            self.leadership.idle_limit(),
        )
        .await?
        {
            return Ok(BatchResult::Lost);
        }
        sqlx::query(
            // Qualified, like every statement after `claim` (which sets `search_path`).
            "INSERT INTO public.projection_poison (version_id, projection, position, tx_id, error) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (version_id, position) DO UPDATE SET error = EXCLUDED.error",
        )
        .bind(version.id)
        .bind(self.definition.name)
        .bind(event.position)
        .bind(stored_tx_id(LogCursor::after(event)))
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE public.projection_versions SET halted_position = $2, last_error = $3, updated_at = now() \
             WHERE id = $1",
        )
        .bind(version.id)
        .bind(event.position)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::error!(
            projection = self.definition.name,
            schema = version.schema_name,
            position = event.position,
            reason,
            "a poison event halts the projection until an operator skips it"
        );
        Ok(BatchResult::Halted {
            applied,
            position: event.position,
        })
    }

    /// Moves `version` past the poison event at `position` if an operator skipped it.
    pub(super) async fn pass_skipped(
        &self,
        version: &ProjectionVersion,
        position: i64,
    ) -> Result<bool> {
        let passed = sqlx::query(
            "UPDATE projection_versions v \
             SET checkpoint_tx_id = p.tx_id, checkpoint_position = p.position, \
                 events_skipped = v.events_skipped + 1, halted_position = NULL, updated_at = now() \
             FROM projection_poison p \
             WHERE v.id = $1 AND v.halted_position = $2 AND p.version_id = v.id \
               AND p.position = $2 AND p.skipped_at IS NOT NULL",
        )
        .bind(version.id)
        .bind(position)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if passed > 0 {
            tracing::warn!(
                projection = self.definition.name,
                position,
                "skipped a poison event"
            );
        }
        Ok(passed > 0)
    }
}
