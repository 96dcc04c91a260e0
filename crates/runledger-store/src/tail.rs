//! A live stream of the log in safe order: catch up from a cursor, then follow new events.
//!
//! The stream listens on the append channel before its first read, so an event committed
//! between a read and the wait wakes it at once. Notifications can be lost (a dropped
//! connection, a writer that rolled back after others committed behind it), so a polling
//! interval bounds how long the stream can sleep.

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
        let mut listener = PgListener::connect_with(reader.pool()).await?;
        listener.listen(EVENTS_CHANNEL).await?;
        let mut cursor = from;
        loop {
            let batch = reader.read_log(cursor, BATCH, tenant).await?;
            let caught_up = batch.len() < BATCH as usize;
            for event in batch {
                cursor = LogCursor::after(&event);
                yield event;
            }
            if caught_up {
                // Either a notification or the poll interval: both lead to one more read.
                let _ = tokio::time::timeout(poll, listener.try_recv()).await;
            }
        }
    }
}
