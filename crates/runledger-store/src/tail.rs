//! A live stream of the log in safe order: catch up from a cursor, then follow new events (a
//! [`LogWalk`](crate::walk::LogWalk) that follows the log, woken when it is caught up).
//!
//! The stream listens on the append channel before its first read, so an event committed
//! between a read and the wait wakes it at once. Notifications can be lost (a dropped
//! connection, a writer that rolled back after others committed behind it), so a polling
//! interval bounds how long the stream can sleep.
//!
//! A notification can also arrive while an older transaction (of any database of the cluster)
//! is still running, so the read it triggers cannot pass that transaction yet; and nothing
//! announces that transaction's end unless it appends. So while committed events are held back
//! that way, the stream looks again after a short, growing pause instead of a whole interval.

use std::time::Duration;

use futures_util::Stream;
use runledger_core::TenantId;
use sqlx::postgres::PgListener;

use crate::EVENTS_CHANNEL;
use crate::error::StoreError;
use crate::read::{EventReader, LogCursor};
use crate::schema::RecordedEvent;

/// How many events one read of the log fetches.
const BATCH: u32 = 500;

/// The first pause before looking again at committed events the last read could not pass (an
/// open transaction held them back); it doubles while they stay held back, up to `poll`.
const HELD_BACK_PAUSE: Duration = Duration::from_millis(5);

/// Every event after `from` (of `tenant`, if given), in safe order, forever; woken by
/// `LISTEN/NOTIFY` and at least every `poll`.
///
/// The stream ends after yielding an error (a failed read, a failed listen).
pub fn tail(
    reader: EventReader,
    from: LogCursor,
    tenant: Option<TenantId>,
    poll: Duration,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> {
    async_stream::try_stream! {
        let mut listener = PgListener::connect_with(&reader.pool).await?;
        listener.listen(EVENTS_CHANNEL).await?;
        let mut walk = reader.walk(from, tenant, BATCH);
        let mut held_back_pause = HELD_BACK_PAUSE;
        loop {
            if let Some(batch) = walk.next_batch().await? {
                held_back_pause = HELD_BACK_PAUSE;
                for event in batch {
                    yield event;
                }
            }
            if walk.is_caught_up() {
                let wait = if walk.has_held_back_events().await? {
                    let wait = held_back_pause.min(poll);
                    held_back_pause = held_back_pause.saturating_mul(2);
                    wait
                } else {
                    poll
                };
                // Either a notification or the wait: both lead to one more read.
                let _ = tokio::time::timeout(wait, listener.try_recv()).await;
            }
        }
    }
}
