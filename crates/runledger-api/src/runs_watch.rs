//! Watching runs (reader role), as Kubernetes' `?watch` and Google's `WaitOperation` serve
//! clients that would otherwise poll: `GET …/runs/{id}?watch=true` streams the run each time it
//! changes and ends after it completes; `GET …/runs?…&watch=true` streams the runs entering,
//! changing in and leaving the list's filter (docs/adr/0017).
//!
//! A watch is a subscriber of the process's live hub ([`crate::live`]): it holds no connection
//! while it waits, and renders a run once the read model has applied the event that changed it;
//! the row is read once per change for all the process's watches ([`AppState::changed_runs`]),
//! each list applying its filter in memory.
//! Each event's SSE `id` is a log cursor, so a client that reconnects with `Last-Event-ID`
//! misses nothing.

use std::collections::HashSet;
use std::convert::Infallible;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use runledger_core::{RunId, TenantId};
use runledger_projections::OPERATION_RUNS;
use runledger_projections::operation_runs::{OperationRunRow, RunFilter, query};
use runledger_store::LogCursor;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::live::{projected_events, resume_cursor};
use crate::runs_queries::run_of_row;

/// Whether nothing can follow: the run completed.
fn is_done(row: &runledger_projections::OperationRunRow) -> bool {
    row.status == runledger_core::RunStatus::Completed.as_str()
}

/// Where a watch starts: after `Last-Event-ID` when the client reconnects, else at the read
/// model's position now (what it shows first is at least that current).
async fn watch_start(state: &AppState, headers: &HeaderMap) -> Result<LogCursor, ApiError> {
    if let Some(resumed) = resume_cursor(headers, None)? {
        return Ok(resumed);
    }
    Ok(state
        .live
        .published
        .checkpoint(OPERATION_RUNS)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .unwrap_or(LogCursor::START))
}

/// `GET /v1/tenants/{tenant_id}/runs/{run_id}?watch=true`: an SSE `run` event with the run now,
/// then one each time it changes; the stream ends after the run's completion. The caller has
/// checked the tenant; another tenant's run is a 404 like a missing one.
///
/// # Errors
/// 404 for a run the tenant does not have; 400 for a malformed `Last-Event-ID`.
pub(crate) async fn watch_run(
    state: AppState,
    tenant: TenantId,
    run: RunId,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let from = watch_start(&state, headers).await?;
    let first = query::find_run(&state.pool, tenant, run)
        .await?
        .ok_or(ApiError::NotFound)?;
    let first = (run_value(&state.config, &first)?, is_done(&first));
    let changes = projected_events(&state, tenant, from)
        .filter(move |event| std::future::ready(event.run_id == run));
    let stream = async_stream::stream! {
        let (json, done) = first;
        yield Ok::<_, Infallible>(Event::default().event("run").id(from.to_string()).data(json.to_string()));
        if done {
            return;
        }
        futures_util::pin_mut!(changes);
        while let Some(event) = changes.next().await {
            let after = LogCursor::after(&event);
            let row = match state.changed_runs.row(tenant, run, after).await {
                Ok(Some(row)) => row,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%error, "a watched run could not be read; the stream ends");
                    return;
                }
            };
            let Ok(json) = run_value(&state.config, &row) else {
                return;
            };
            yield Ok(Event::default().event("run").id(after.to_string()).data(json.to_string()));
            if is_done(&row) {
                return;
            }
        }
    };
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `GET /v1/tenants/{tenant_id}/runs?…&watch=true`: for each of the tenant's events from now
/// on, once the read model has applied it, an SSE event for its run: `entered` with the run when
/// it passes the filter and the stream had not shown it, `changed` with the run when it had,
/// `left` with the run's id when it no longer passes. (A run that passed the filter before the
/// stream began enters on its first change; list the runs first for those.)
///
/// # Errors
/// 400 for a malformed `Last-Event-ID`.
pub(crate) async fn watch_list(
    state: AppState,
    tenant: TenantId,
    filter: RunFilter,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let from = watch_start(&state, headers).await?;
    let events = projected_events(&state, tenant, from);
    let stream = async_stream::stream! {
        let mut shown: HashSet<RunId> = HashSet::new();
        futures_util::pin_mut!(events);
        while let Some(event) = events.next().await {
            let after = LogCursor::after(&event);
            let id = after.to_string();
            let run = event.run_id;
            let listed = state.changed_runs.row_if_listed(tenant, run, after, &filter).await;
            let (name, data) = match listed {
                Ok(Some(row)) => {
                    let Ok(json) = run_value(&state.config, &row) else {
                        return;
                    };
                    let name = if shown.insert(run) { "entered" } else { "changed" };
                    (name, json!({ "run": json }))
                }
                Ok(None) if shown.remove(&run) => ("left", json!({ "id": run.to_string() })),
                Ok(None) => {
                    // Nothing to show; the id still moves the client's resume point.
                    yield Ok::<_, Infallible>(Event::default().comment("skipped").id(id));
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "a watched list could not be read; the stream ends");
                    return;
                }
            };
            yield Ok(Event::default().event(name).id(id).data(Value::to_string(&data)));
        }
    };
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// A read-model row as the JSON of a watch event's run.
fn run_value(config: &crate::ApiConfig, row: &OperationRunRow) -> Result<Value, ApiError> {
    serde_json::to_value(run_of_row(config, row)?).map_err(|e| ApiError::Internal(e.into()))
}
