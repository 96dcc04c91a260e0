//! One run: why it failed, timed out or was cancelled (at the top), its phases as duration
//! bars, every OperationRun field with its limits, heartbeat and cancel request, its counts and
//! failures, its context as key/value rows (raw JSON one click away), the runs of the same
//! identity, and (for auditors, as in the API) the timeline of its events, each opening onto its
//! payload and metadata, with the verifier's verdict on its hash chain. Actions by role: copy
//! as JSON (everyone), the events as NDJSON and the chain's verification (auditors), Cancel
//! (writers). Live while the run is active. This is the page `view_url`s and notices link to.
//!
//! The fields come from the read model; the timeline from the run's events. A run whose events
//! the read model has not applied yet is shown as recorded but not yet projected, and the page
//! fills in when it is.

use std::convert::Infallible;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use futures_util::{Stream, StreamExt};
use runledger_audit::verify::verify_run;
use runledger_core::{RunId, TenantId};
use runledger_projections::operation_runs::find_run;
use runledger_store::LogCursor;
use serde::Deserialize;

use super::Nav;
use super::live::start_cursor;
use super::page_error::{ForPage, PageError, PageForm};
use super::read_model::{Banner, ReadModel};
use super::runs_page::{back_to_list, run_view};
use super::session::Viewer;
use super::timeline::EventView;
use super::times::TimeView;
use super::view::RunView;
use crate::AppState;
use crate::auth::{Authorized, Role, needs};
use crate::error::ApiError;
use crate::extract::{Query, RunPath};
use crate::live::projected_events;
use crate::runs_queries::run_of_row;

/// How many runs of the same identity the page links to.
const RELATED_SHOWN: u32 = 10;

/// The verifier's verdict on the run's chain.
#[derive(Debug)]
pub struct ChainBadge {
    pub valid: bool,
    pub text: String,
    /// When this page verified it (every rendering verifies again).
    pub verified: TimeView,
}

/// Another run of the same identity (the same operation queued again, before or after).
#[derive(Debug)]
pub struct RelatedRun {
    pub run: RunView,
}

/// What the viewer's role may do on the page.
#[derive(Debug, Clone, Copy)]
pub struct Actions {
    /// Events, NDJSON and the chain's verification (auditors and admins).
    pub audit: bool,
    /// Cancel (writers and admins).
    pub cancel: bool,
}

/// The part of the page a live update replaces.
#[derive(Template)]
#[template(path = "run_article.html")]
struct RunArticle {
    run_id: String,
    tenant_id: i64,
    actions: Actions,
    /// The session's CSRF token, for the Cancel form.
    csrf: String,
    related: Vec<RelatedRun>,
    /// `None` while the read model has not applied the run's first event.
    run: Option<RunView>,
    /// `None` for a role that may not read event history.
    timeline: Option<Vec<EventView>>,
    chain: Option<ChainBadge>,
    /// Absent once the run is done (or when the read model's checkpoint is unknown).
    live_url: Option<String>,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    nav: Option<Nav>,
    title: String,
    /// The runs list the viewer came from, with its filters.
    back_url: String,
    banner: Option<Banner>,
    article: String,
}

/// The article of the run as it is now, or `None` when the tenant has no such run.
async fn article(
    state: &AppState,
    viewer: &Viewer,
    tenant_id: TenantId,
    run_id: RunId,
    read_model_built: bool,
    live_from: Option<String>,
) -> Result<Option<RunArticle>, PageError> {
    let row = if read_model_built {
        let pool = crate::read_your_writes::read_pool(state, None).await?;
        find_run(&pool, tenant_id, run_id)
            .await
            .map_err(ApiError::from)?
    } else {
        None
    };
    let events = state
        .reader
        .read_stream(tenant_id, run_id)
        .await
        .map_err(ApiError::from)?;
    if row.is_none() && events.is_empty() {
        return Ok(None);
    }
    let now = state.clock.now();
    let run = row
        .as_ref()
        .map(|row| -> Result<RunView, ApiError> {
            let mut view = run_view(row, now)?;
            let json = run_of_row(&state.config, row)?;
            view.json =
                serde_json::to_string_pretty(&json).map_err(|e| ApiError::Internal(e.into()))?;
            Ok(view)
        })
        .transpose()?;
    let related = match &row {
        Some(row) => related_runs(state, tenant_id, row, now).await?,
        None => Vec::new(),
    };
    let auditor = viewer.caller.role.allows(Role::Auditor);
    let chain = if auditor {
        verify_run(&state.reader, tenant_id, run_id)
            .await
            .map_err(ApiError::from)?
            .map(|verification| match &verification.first_invalid {
                None => ChainBadge {
                    valid: true,
                    text: format!("Chain verified ({} events)", verification.events_checked),
                    verified: TimeView::new(now, now),
                },
                Some(failure) => ChainBadge {
                    valid: false,
                    text: format!(
                        "Chain broken at version {}: {}",
                        failure.version,
                        failure.explanation()
                    ),
                    verified: TimeView::new(now, now),
                },
            })
    } else {
        None
    };
    let done = run.as_ref().is_some_and(|run| run.done);
    let live_url = live_from.filter(|_| !done).map(|after| {
        format!(
            "{}/live?after={}",
            runledger_core::view_url("/ui", tenant_id, run_id),
            form_urlencoded::byte_serialize(after.as_bytes()).collect::<String>()
        )
    });
    Ok(Some(RunArticle {
        run_id: run_id.to_string(),
        tenant_id: tenant_id.get(),
        actions: Actions {
            audit: auditor,
            cancel: viewer.caller.role.allows(Role::Writer),
        },
        csrf: viewer.csrf.clone(),
        related,
        run,
        timeline: auditor.then(|| EventView::timeline(&events, now)),
        chain,
        live_url,
    }))
}

/// The tenant's other runs of `row`'s identity, newest first.
async fn related_runs(
    state: &AppState,
    tenant_id: TenantId,
    row: &runledger_projections::OperationRunRow,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<RelatedRun>, ApiError> {
    let rows = runledger_projections::operation_runs::same_identity(
        &state.pool,
        tenant_id,
        &row.run_identity_hash,
        row.id,
        RELATED_SHOWN,
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RelatedRun {
                run: run_view(row, now)?,
            })
        })
        .collect()
}

/// `GET /ui/tenants/{tenant_id}/runs/{run_id}` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunPageQuery {
    /// The query string of the runs list the viewer came from (its filters), for the way back.
    list: Option<String>,
}

/// `GET /ui/tenants/{tenant_id}/runs/{run_id}`.
pub async fn run_page(
    State(state): State<AppState>,
    Authorized {
        caller: viewer,
        path,
        ..
    }: Authorized<RunPath, needs::Reader, Viewer>,
    ForPage(Query(query)): ForPage<Query<RunPageQuery>>,
) -> Result<Response, PageError> {
    let read_model = ReadModel::of(&state).await;
    let article = article(
        &state,
        &viewer,
        path.tenant_id,
        path.run_id,
        read_model.is_built(),
        read_model.live_cursor(),
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    let title = article.run.as_ref().map_or_else(
        || format!("Run {}", path.run_id),
        |run| run.run_type.clone(),
    );
    let page = RunPage {
        nav: Some(Nav::of(&state, &viewer, path.tenant_id.get()).await),
        title,
        back_url: back_to_list(path.tenant_id.get(), query.list.as_deref()),
        banner: read_model.banner(),
        article: article.render()?,
    };
    Ok(Html(page.render()?).into_response())
}

/// `GET …/runs/{run_id}/live` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveRunQuery {
    /// The cursor the page was rendered at.
    after: Option<String>,
}

/// `GET /ui/tenants/{tenant_id}/runs/{run_id}/live`: a server-sent `run` event with the
/// re-rendered article after each of the run's events, and `end` once the run is done.
pub async fn live_run(
    State(state): State<AppState>,
    Authorized {
        caller: viewer,
        path,
        ..
    }: Authorized<RunPath, needs::Reader, Viewer>,
    ForPage(Query(query)): ForPage<Query<LiveRunQuery>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let from = start_cursor(&headers, query.after.as_deref())?;
    let RunPath { tenant_id, run_id } = path;
    let updates = async_stream::stream! {
        let events = projected_events(&state, tenant_id, from)
            .filter(move |event| std::future::ready(event.run_id == run_id));
        futures_util::pin_mut!(events);
        while let Some(event) = events.next().await {
            let cursor = LogCursor::after(&event).to_string();
            match rendered_article(&state, &viewer, tenant_id, run_id, cursor.clone()).await {
                Ok(Some((html, done))) => {
                    yield Ok(Event::default().event("run").id(cursor).data(html));
                    if done {
                        // Nothing follows a run's end: close the response.
                        yield Ok(Event::default().event("end").data("done"));
                        break;
                    }
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(?error, "a live run could not be rendered"),
            }
        }
    };
    Ok(Sse::new(updates).keep_alive(KeepAlive::default()))
}

/// The article of the run after an event, and whether the run is done.
async fn rendered_article(
    state: &AppState,
    viewer: &Viewer,
    tenant_id: TenantId,
    run_id: RunId,
    cursor: String,
) -> Result<Option<(String, bool)>, PageError> {
    let Some(article) = article(state, viewer, tenant_id, run_id, true, Some(cursor)).await? else {
        return Ok(None);
    };
    let done = article.run.as_ref().is_some_and(|run| run.done);
    Ok(Some((article.render()?, done)))
}

/// `GET /ui/tenants/{tenant_id}/runs/{run_id}/events.ndjson` (auditors, as the API's event
/// routes): the run's events as a download, one JSON line each, in the export's line format.
pub async fn run_events_ndjson(
    State(state): State<AppState>,
    Authorized { path, .. }: Authorized<RunPath, needs::Auditor, Viewer>,
) -> Result<Response, PageError> {
    let events = state
        .reader
        .read_stream(path.tenant_id, path.run_id)
        .await
        .map_err(ApiError::from)?;
    if events.is_empty() {
        return Err(ApiError::NotFound.into());
    }
    let mut body = String::new();
    for event in &events {
        let line = serde_json::to_string(&runledger_audit::audit_event(event))
            .map_err(|e| ApiError::Internal(e.into()))?;
        body.push_str(&line);
        body.push('\n');
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"run-{}.ndjson\"", path.run_id),
            ),
        ],
        body,
    )
        .into_response())
}

/// The Cancel form: the session's CSRF token and an optional reason.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// `POST /ui/tenants/{tenant_id}/runs/{run_id}/cancel` (writers): the cancel command, as the
/// API's route runs it, then back to the run's page.
pub async fn cancel(
    State(state): State<AppState>,
    Authorized {
        caller: viewer,
        path,
        ..
    }: Authorized<RunPath, needs::Writer, Viewer>,
    PageForm(form): PageForm<CancelForm>,
) -> Result<Response, PageError> {
    viewer.check_form(&super::session::CsrfForm { csrf: form.csrf })?;
    let reason = Some(form.reason.trim().to_owned()).filter(|r| !r.is_empty());
    let run_page = runledger_core::view_url("/ui", path.tenant_id, path.run_id);
    crate::runs_commands::cancel_for_page(
        &state,
        viewer.caller,
        path,
        runledger_wire::CancelBody { reason },
    )
    .await?;
    Ok(Redirect::to(&run_page).into_response())
}
