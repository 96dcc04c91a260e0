//! Audit routes (auditor role): a run's stored events with their hashes, a run's state as of a
//! version or a time, and the tenant's log in safe order, paged or live as server-sent events.
//!
//! These routes read the event log itself, not a projection, and the state route folds events
//! at request time on purpose, with the store's own fold (the domain's `evolve`), so an auditor
//! sees what the command path and the projections would have seen.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use runledger_audit::audit_event;
use runledger_audit::format::rfc3339;
use runledger_audit::replay::{PointInTime, ReplayError, state_at};
use runledger_core::TenantId;
use runledger_store::{LogCursor, RecordedEvent};
use runledger_wire::audit::{LogParams, StateParams};
use runledger_wire::{AsOf, EventPage, RunEvents, RunStateAt};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Authorized, needs};
use crate::error::ApiError;
use crate::extract::{Query, RunPath, TenantPath};
use crate::live::{resume_cursor, tenant_log};
use crate::openapi::AUDITOR_ROLE;
use crate::run_json::run_json;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run_events))
        .routes(routes!(run_state))
        .routes(routes!(tenant_events))
}

/// Page size of the tenant log when `limit` is not given, and the largest one allowed.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// A run's events: its whole stream, in version order, with their hashes.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/runs/{run_id}/events", tag = "audit",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path)),
    responses((status = 200, body = RunEvents, description = "The run's events"), (status = 403, description = AUDITOR_ROLE)),
    security(("bearer" = [])))]
async fn run_events(
    State(state): State<AppState>,
    Authorized { path, .. }: Authorized<RunPath, needs::Auditor>,
) -> Result<Json<RunEvents>, ApiError> {
    let stored = state
        .reader
        .read_stream(path.tenant_id, path.run_id)
        .await?;
    if stored.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(RunEvents {
        events: stored.iter().map(audit_event).collect(),
    }))
}

/// A run's state as of a version or a time, folded from its events.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/runs/{run_id}/state", tag = "audit",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), StateParams),
    responses((status = 200, body = RunStateAt, description = "The run as it stood"), (status = 400, description = "Both at_version and at, a malformed value, or at_version outside 1..=version"),
        (status = 403, description = AUDITOR_ROLE), (status = 404, description = "No such run, or none yet at `at`")),
    security(("bearer" = [])))]
async fn run_state(
    State(state): State<AppState>,
    Authorized { path, .. }: Authorized<RunPath, needs::Auditor>,
    Query(params): Query<StateParams>,
) -> Result<Json<RunStateAt>, ApiError> {
    let at_version = params
        .at_version
        .as_deref()
        .map(|text| {
            text.parse::<u64>()
                .map_err(|_| ApiError::bad_field("at_version", "must be a positive integer"))
        })
        .transpose()?;
    let at = params
        .at
        .as_deref()
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::bad_field("at", "must be an RFC 3339 time, e.g. 2026-11-26T12:00:00Z")
                })
        })
        .transpose()?;
    if at_version.is_some() && at.is_some() {
        return Err(ApiError::bad_field(
            "at_version",
            "give at_version or at, not both",
        ));
    }
    let point = match (at_version, at) {
        (Some(version), _) => PointInTime::Version(version),
        (None, Some(at)) => PointInTime::Time(at),
        (None, None) => PointInTime::Latest,
    };
    let stored = state
        .reader
        .read_stream(path.tenant_id, path.run_id)
        .await?;
    let folded = state_at(&stored, point).map_err(|error| match error {
        ReplayError::NoSuchRun | ReplayError::NothingYet => ApiError::NotFound,
        ReplayError::VersionOutOfRange { .. } => {
            ApiError::bad_field("at_version", error.to_string())
        }
        // Only a missing or edited row (which the chain verifier reports) gets here.
        ReplayError::IncompleteHistory { .. }
        | ReplayError::DoesNotFold
        | ReplayError::Store(_) => ApiError::Internal(
            anyhow::Error::new(error).context(format!("replaying run {}", path.run_id)),
        ),
    })?;
    Ok(Json(RunStateAt {
        // A past state: the heartbeat table holds only the latest heartbeat, so none is shown.
        run: run_json(&state.config, &folded.run, None)?,
        as_of: AsOf {
            version: folded.version,
            recorded_at: rfc3339(folded.recorded_at),
        },
    }))
}

/// The tenant's log: its events in safe log order, paged by cursor, or live.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/events", tag = "audit",
    params(("tenant_id" = i64, Path), LogParams,
        ("Accept" = Option<String>, Header, description = "`text/event-stream` keeps the response open and streams events live (SSE: `id` = cursor, `event` = event_type, `data` = the event)"),
        ("Last-Event-ID" = Option<String>, Header, description = "Live stream only: resume after this cursor; wins over `after`, because a reconnecting EventSource sends it")),
    responses((status = 200, description = "A page of the log; or, with `Accept: text/event-stream`, the live stream",
            content((EventPage = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "A malformed cursor or limit"), (status = 403, description = AUDITOR_ROLE)),
    security(("bearer" = [])))]
async fn tenant_events(
    State(state): State<AppState>,
    Authorized {
        path: TenantPath { tenant_id },
        ..
    }: Authorized<TenantPath, needs::Auditor>,
    Query(params): Query<LogParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = params
        .after
        .as_deref()
        .map(|text| parse_cursor("after", text))
        .transpose()?
        .unwrap_or(LogCursor::START);
    if accepts_event_stream(&headers) {
        if params.limit.is_some() {
            return Err(ApiError::bad_field(
                "limit",
                "applies to pages, not to the live stream",
            ));
        }
        let from = resume_cursor(&headers, Some(after))?.unwrap_or(after);
        return Ok(live_events(&state, from, tenant_id).into_response());
    }
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                ApiError::bad_field("limit", format!("must be between 1 and {MAX_LIMIT}"))
            })?,
    };
    let stored = state.reader.read_log(after, limit, Some(tenant_id)).await?;
    let next_cursor = stored.last().map_or(after, LogCursor::after).to_string();
    Ok(Json(EventPage {
        events: stored.iter().map(audit_event).collect(),
        next_cursor,
    })
    .into_response())
}

fn parse_cursor(field: &'static str, text: &str) -> Result<LogCursor, ApiError> {
    text.parse()
        .map_err(|error: runledger_store::read::InvalidCursor| {
            ApiError::bad_field(field, error.to_string())
        })
}

/// Whether the client asked for `text/event-stream` (in any of its `Accept` values).
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            range
                .split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The tenant's events after `from`, forever, as server-sent events.
///
/// Each event's SSE `id` is its cursor, so a client that connections with `Last-Event-ID`
/// resumes exactly after the last event it received: the safe log order guarantees that
/// nothing committed later can appear behind that cursor, so it misses and repeats nothing.
/// A failed read ends the response (logged); the client reconnects and resumes the same way.
/// The stream is a subscriber of the process's live hub: it holds no connection while it waits.
fn live_events(
    state: &AppState,
    from: LogCursor,
    tenant: TenantId,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let events = tenant_log(state, tenant, from).map(|event| Ok(sse_event(&event)));
    Sse::new(events).keep_alive(KeepAlive::default())
}

fn sse_event(event: &RecordedEvent) -> Event {
    let audit = audit_event(event);
    let data = serde_json::to_string(&audit)
        .unwrap_or_else(|e| unreachable!("an audit event always serializes: {e}"));
    let sse = Event::default().id(&audit.cursor).data(data);
    // axum panics on a line break in an event name; stored names are literals without one, but
    // a tampered row must not take the auditor's stream down: such an event keeps the default
    // name (`message`), and its `event_type` is still in the data.
    if audit.event_type.contains(['\r', '\n']) {
        sse
    } else {
        sse.event(&audit.event_type)
    }
}
