//! The fan-out of the process's live hub to HTTP clients: every SSE stream (the tenant's log
//! tail, the pages' live list and run, the runs' `?watch`) is a subscriber of
//! [`AppState::live`], holding no database connection while it waits (docs/adr/0017).
//!
//! A stream reads the log only to catch up from its own cursor (when it starts, or after it fell
//! behind the hub's broadcast because its client reads slowly), with short reads; the rest comes
//! from the hub's one read per wake. A stream that shows the read model waits for the
//! projection's published position, without a query.

use axum::http::HeaderMap;
use futures_util::{Stream, StreamExt};
use runledger_core::TenantId;
use runledger_projections::OPERATION_RUNS;
use runledger_store::{LogCursor, RecordedEvent};

use crate::AppState;
use crate::error::ApiError;

/// Where a live stream resumes: after the `Last-Event-ID` a reconnecting `EventSource` sends
/// (the id of the last event it received, which wins: a reconnect repeats the URL it first
/// opened), else `after`.
///
/// # Errors
/// A 400 naming `Last-Event-ID` when it is not a log cursor.
pub fn resume_cursor(
    headers: &HeaderMap,
    after: Option<LogCursor>,
) -> Result<Option<LogCursor>, ApiError> {
    let Some(last) = headers.get("last-event-id") else {
        return Ok(after);
    };
    last.to_str()
        .ok()
        .and_then(|text| text.parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::bad_field("Last-Event-ID", "is not a log cursor"))
}

/// The tenant's events after `from`, in safe order, forever. A failed catch-up read ends the
/// stream (logged); the client reconnects with `Last-Event-ID` and loses nothing.
pub fn tenant_log(
    state: &AppState,
    tenant: TenantId,
    from: LogCursor,
) -> impl Stream<Item = RecordedEvent> + Send + use<> {
    state
        .live
        .hub
        .follow(from, Some(tenant))
        .take_while(|next| {
            if let Err(error) = next {
                tracing::error!(error.cause_chain = ?error, error.message = %error, "a live stream could not read the log");
            }
            std::future::ready(next.is_ok())
        })
        .filter_map(|next| std::future::ready(next.ok()))
}

/// The tenant's events after `from`, forever, each once the OperationRun read model has applied
/// it (or the read wait ran out: the client then sees what the read model has, and catches up
/// on the next event), so what is rendered for an event shows its effect.
pub fn projected_events(
    state: &AppState,
    tenant: TenantId,
    from: LogCursor,
) -> impl Stream<Item = RecordedEvent> + Send + use<> {
    let published = state.live.published.clone();
    let wait = state.config.max_read_wait;
    tenant_log(state, tenant, from).then(move |event| {
        let published = published.clone();
        async move {
            match published
                .wait_for(OPERATION_RUNS, LogCursor::after(&event), wait)
                .await
            {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    position = event.position,
                    "a live stream's event was not applied within the read wait"
                ),
                Err(error) => {
                    tracing::warn!(%error, "a live stream could not wait for the read model")
                }
            }
            event
        }
    })
}
