//! A live stream of the log in safe order for one reader on its own: catch up from a cursor,
//! then follow new events, through a [`LogHub`] of its own. A process with
//! many live readers shares one hub instead ([`LogHub::follow`](crate::hub::LogHub::follow)).

use std::time::Duration;

use futures_util::Stream;
use runledger_core::TenantId;

use crate::error::StoreError;
use crate::hub::{HubConfig, LogHub};
use crate::read::{EventReader, LogCursor};
use crate::schema::RecordedEvent;

/// Every event after `from` (of `tenant`, if given), in safe order, forever; woken by
/// `LISTEN/NOTIFY` and at least every `poll`.
///
/// The stream ends after yielding an error (a failed read).
pub fn tail(
    reader: EventReader,
    from: LogCursor,
    tenant: Option<TenantId>,
    poll: Duration,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> {
    let hub = LogHub::start(
        reader,
        HubConfig {
            poll,
            ..HubConfig::default()
        },
    );
    // The stream holds the hub (and so its tasks) for as long as it lives.
    hub.follow(from, tenant)
}
