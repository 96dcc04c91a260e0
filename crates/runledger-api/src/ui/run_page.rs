//! One run: every OperationRun field, its counts and failures, its context, and (for auditors,
//! as in the API) the timeline of its events with the verifier's verdict on its hash chain.
//! Live while the run is active. This is the page `view_url`s and notices link to.
//!
//! The fields come from the read model; the timeline from the run's events. A run whose events
//! the read model has not applied yet is shown as recorded but not yet projected, and the page
//! fills in when it is.

use std::convert::Infallible;

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use runledger_audit::verify::verify_run;
use runledger_core::{RunId, TenantId};
use runledger_projections::operation_runs::find_run;
use runledger_store::LogCursor;
use serde::Deserialize;

use super::Nav;
use super::live::{projected_events, start_cursor};
use super::page_error::{ForPage, PageError};
use super::read_model::{Banner, ReadModel};
use super::runs_page::run_view;
use super::session::Viewer;
use super::view::{EventView, RunView};
use crate::AppState;
use crate::auth::{Authorized, Role, needs};
use crate::error::ApiError;
use crate::extract::{Query, RunPath};

/// The verifier's verdict on the run's chain.
#[derive(Debug)]
pub struct ChainBadge {
    pub valid: bool,
    pub text: String,
}

/// The part of the page a live update replaces.
#[derive(Template)]
#[template(path = "run_article.html")]
struct RunArticle {
    run_id: String,
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
        find_run(&state.pool, tenant_id, run_id)
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
    let run = row
        .as_ref()
        .map(|row| run_view(row, state.clock.now()))
        .transpose()?;
    let auditor = viewer.caller.role.allows(Role::Auditor);
    let chain = if auditor {
        verify_run(&state.reader, tenant_id, run_id)
            .await
            .map_err(ApiError::from)?
            .map(|verification| match &verification.first_invalid {
                None => ChainBadge {
                    valid: true,
                    text: format!("Chain verified ({} events)", verification.events_checked),
                },
                Some(failure) => ChainBadge {
                    valid: false,
                    text: format!(
                        "Chain broken at version {}: {}",
                        failure.version,
                        failure.explanation()
                    ),
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
        run,
        timeline: auditor.then(|| events.iter().map(EventView::from).collect()),
        chain,
        live_url,
    }))
}

/// `GET /ui/tenants/{tenant_id}/runs/{run_id}`.
pub async fn run_page(
    State(state): State<AppState>,
    Authorized {
        caller: viewer,
        path,
        ..
    }: Authorized<RunPath, needs::Reader, Viewer>,
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
        nav: Some(viewer.nav(path.tenant_id.get())),
        title,
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
        let events = projected_events(state.clone(), tenant_id, from)
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
