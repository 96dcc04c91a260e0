//! When anchors are recorded: after so many new events, or a while after the last anchor if
//! any event came since; the task that records them while the ledger serves.

use std::future::Future;
use std::time::Duration;

use runledger_store::{EventReader, LogCursor};
use sqlx::PgPool;

use super::model::Anchor;
use super::stored::{latest_anchor, record_anchor};
use crate::error::AuditError;

/// When the ledger records anchors: after `every_events` new events, or `every` after the last
/// anchor if any event came since. Zero turns a trigger off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchorPolicy {
    /// Events since the newest anchor that call for a new one.
    pub every_events: u64,
    /// Time since the last anchor after which any new event calls for one.
    pub every: Duration,
}

/// How often the anchoring task looks at the log.
const ANCHOR_POLL: Duration = Duration::from_secs(1);

/// What one look at the log did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorOutcome {
    /// An anchor was recorded.
    Recorded(Box<Anchor>),
    /// Nothing called for one yet.
    NotDue,
}

/// Records an anchor if the policy calls for one, `since_last` after the last anchor.
///
/// # Errors
/// On a database failure.
pub async fn anchor_if_due(
    pool: &PgPool,
    policy: AnchorPolicy,
    since_last: Duration,
) -> Result<AnchorOutcome, AuditError> {
    let after = latest_anchor(pool)
        .await?
        .map_or(LogCursor::START, |anchor| anchor.cursor);
    let moved = EventReader::new(pool.clone())
        .count_events(after, None, policy.every_events.max(1))
        .await?;
    let due = (policy.every_events > 0 && moved >= policy.every_events)
        || (!policy.every.is_zero() && since_last >= policy.every && moved > 0);
    if !due {
        return Ok(AnchorOutcome::NotDue);
    }
    Ok(match record_anchor(pool).await? {
        Some(anchor) => AnchorOutcome::Recorded(Box::new(anchor)),
        None => AnchorOutcome::NotDue,
    })
}

/// Records anchors as `policy` says until `shutdown` completes. A failed attempt is logged and
/// retried at the next look: anchoring never stops the ledger.
pub async fn run_anchoring(pool: PgPool, policy: AnchorPolicy, shutdown: impl Future<Output = ()>) {
    if policy.every_events == 0 && policy.every.is_zero() {
        return;
    }
    tokio::pin!(shutdown);
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(ANCHOR_POLL) => {}
        }
        match anchor_if_due(&pool, policy, last.elapsed()).await {
            Ok(AnchorOutcome::Recorded(_)) => last = tokio::time::Instant::now(),
            Ok(AnchorOutcome::NotDue) => {}
            Err(error) => {
                tracing::warn!(error.cause_chain = ?error, error.message = %error, "anchoring failed; retrying");
            }
        }
    }
}
