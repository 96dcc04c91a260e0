//! The runs of a tenant: filters, newest first, cursor pages, and live rows.
//!
//! The page runs the OperationRun read model's own list query, with the list route's page
//! tokens (`crate::runs_queries::RunList`); its filter form speaks the browser's language
//! (empty fields, calendar dates) and is turned into the read model's typed filter here. The
//! type field matches run types by prefix, so `inventory` finds every `inventory.*` run.

use std::convert::Infallible;

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::{Stream, StreamExt};
use runledger_core::{Outcome, RunStatus, TenantId};
use runledger_projections::OperationRunRow;
use runledger_projections::operation_runs::{RunFilter, RunOrder, run_if_listed};
use serde::{Deserialize, Serialize};

use super::live::start_cursor;
use super::page_error::{ForPage, PageError};
use super::read_model::{Banner, ReadModel};
use super::session::Viewer;
use super::view::RunView;
use super::{Nav, runs_url};
use crate::AppState;
use crate::auth::{Authorized, needs};
use crate::error::ApiError;
use crate::extract::{Query, TenantPath};
use crate::live::projected_events;
use crate::runs_queries::{RunList, initiator, snapshot_of_row, type_prefix};

/// How many runs a page shows.
const PAGE_SIZE: u32 = 50;

/// The filter form, as a browser sends it: every field may be empty.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunsPageQuery {
    /// Run types starting with this.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub run_type: String,
    /// One status.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// One outcome.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub outcome: String,
    /// The initiating user's id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub initiator: String,
    /// Created on or after this day (UTC, `YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_from: String,
    /// Created on or before this day (UTC, `YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_to: String,
    /// The page after the first.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub page_token: String,
    /// Live stream only: the cursor the page was rendered at.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub after: String,
}

impl RunsPageQuery {
    /// The read model's filter for these fields.
    fn filter(&self) -> Result<RunFilter, ApiError> {
        let day = |field: &'static str, value: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
            text(value)
                .map(|value| {
                    NaiveDate::parse_from_str(&value, "%Y-%m-%d")
                        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
                        .map_err(|_| ApiError::bad_field(field, "must be a date, YYYY-MM-DD"))
                })
                .transpose()
        };
        let initiator_user_id = text(&self.initiator)
            .map(|id| {
                id.parse::<i64>()
                    .map_err(|_| ApiError::bad_field("initiator", "must be a user id (a number)"))
            })
            .transpose()?;
        let created_after = day("created_from", &self.created_from)?;
        // The last day is included: before the start of the next one.
        let created_before =
            day("created_to", &self.created_to)?.map(|day| day + chrono::Duration::days(1));
        Ok(RunFilter {
            run_type: None,
            type_prefix: text(&self.run_type)
                .as_deref()
                .map(type_prefix)
                .transpose()?,
            statuses: text(&self.status)
                .map(|s| s.parse::<RunStatus>())
                .transpose()?
                .into_iter()
                .collect(),
            outcomes: text(&self.outcome)
                .map(|o| o.parse::<Outcome>())
                .transpose()?
                .into_iter()
                .collect(),
            initiator: initiator_user_id.map(initiator).transpose()?,
            created_after,
            created_before,
        })
    }

    /// This query string, with `page_token` (and the live cursor) replaced.
    fn with_page(&self, page_token: Option<&str>) -> String {
        let query = RunsPageQuery {
            page_token: page_token.unwrap_or_default().to_owned(),
            after: String::new(),
            ..self.clone()
        };
        serde_html_form::to_string(&query).unwrap_or_default()
    }
}

/// A form field's value, if it has one.
fn text(value: &str) -> Option<String> {
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

/// An option of a filter's `<select>`.
#[derive(Debug)]
pub struct SelectOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    nav: Option<Nav>,
    tenant_id: i64,
    filters: RunsPageQuery,
    status_options: Vec<SelectOption>,
    outcome_options: Vec<SelectOption>,
    runs: Vec<RunView>,
    banner: Option<Banner>,
    /// Absent when the read model's checkpoint is unknown.
    live_url: Option<String>,
    first_page: bool,
    next_url: Option<String>,
}

#[derive(Template)]
#[template(path = "run_row.html")]
struct RunRow {
    run: RunView,
}

/// The run's view, for a page rendered at `now`.
pub fn run_view(row: &OperationRunRow, now: DateTime<Utc>) -> Result<RunView, ApiError> {
    let run = snapshot_of_row(row)?;
    let url = runledger_core::view_url("/ui", run.tenant_id, run.id);
    Ok(RunView::new(&run, url, now))
}

/// `GET /ui/tenants/{tenant_id}/runs`.
pub async fn runs_page(
    State(state): State<AppState>,
    Authorized {
        caller: viewer,
        path: TenantPath { tenant_id },
        ..
    }: Authorized<TenantPath, needs::Reader, Viewer>,
    ForPage(Query(filters)): ForPage<Query<RunsPageQuery>>,
) -> Result<Response, PageError> {
    let read_model = ReadModel::of(&state).await;
    let list = RunList {
        filter: filters.filter()?,
        order: RunOrder::CreatedDesc,
    }
    .page(tenant_id, PAGE_SIZE, text(&filters.page_token).as_deref())?;
    let (rows, next_page_token) = if read_model.is_built() {
        let (page, next_page_token) = list.fetch(&state, tenant_id).await?;
        (page.rows, next_page_token)
    } else {
        (Vec::new(), None)
    };
    let now = state.clock.now();
    let runs = rows
        .iter()
        .map(|row| run_view(row, now))
        .collect::<Result<Vec<_>, _>>()?;
    let base = runs_url(tenant_id.get());
    let page = RunsPage {
        nav: Some(viewer.nav(tenant_id.get())),
        tenant_id: tenant_id.get(),
        status_options: RunStatus::ALL
            .iter()
            .map(|s| SelectOption {
                value: s.as_str(),
                label: s.label(),
                selected: filters.status == s.as_str(),
            })
            .collect(),
        outcome_options: Outcome::ALL
            .iter()
            .map(|o| SelectOption {
                value: o.as_str(),
                label: o.label(),
                selected: filters.outcome == o.as_str(),
            })
            .collect(),
        runs,
        banner: read_model.banner(),
        live_url: read_model.live_cursor().map(|after| {
            let query = RunsPageQuery {
                after,
                ..filters.clone()
            };
            format!(
                "{base}/live?{}",
                serde_html_form::to_string(&query).unwrap_or_default()
            )
        }),
        first_page: filters.page_token.is_empty(),
        next_url: next_page_token
            .as_deref()
            .map(|token| format!("{base}?{}", filters.with_page(Some(token)))),
        filters,
    };
    Ok(Html(page.render()?).into_response())
}

/// What a live list sends for a run that changed: its new row, or `null` when it no longer
/// passes the page's filters.
#[derive(Debug, Serialize)]
struct RowUpdate {
    id: String,
    html: Option<String>,
}

/// `GET /ui/tenants/{tenant_id}/runs/live`: server-sent `run` events with the re-rendered rows
/// of the runs that change, for the page's filters.
pub async fn live_runs(
    State(state): State<AppState>,
    Authorized {
        path: TenantPath { tenant_id },
        ..
    }: Authorized<TenantPath, needs::Reader, Viewer>,
    ForPage(Query(filters)): ForPage<Query<RunsPageQuery>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let filter = filters.filter()?;
    let from = start_cursor(
        &headers,
        Some(&filters.after)
            .filter(|a| !a.is_empty())
            .map(String::as_str),
    )?;
    let updates = projected_events(&state, tenant_id, from).then(move |event| {
        let state = state.clone();
        let filter = filter.clone();
        async move {
            let cursor = runledger_store::LogCursor::after(&event).to_string();
            let update = row_update(&state, tenant_id, event.run_id, &filter)
                .await
                .inspect_err(|error| tracing::warn!(?error, "a live row could not be rendered"))
                .ok();
            Ok(match update {
                Some(update) => Event::default()
                    .event("run")
                    .id(cursor)
                    .data(serde_json::to_string(&update).unwrap_or_default()),
                // Nothing to show for this event; the id still moves the browser's resume point.
                None => Event::default().comment("skipped").id(cursor),
            })
        }
    });
    Ok(Sse::new(updates).keep_alive(KeepAlive::default()))
}

async fn row_update(
    state: &AppState,
    tenant_id: TenantId,
    run_id: runledger_core::RunId,
    filter: &RunFilter,
) -> Result<RowUpdate, PageError> {
    let html = match run_if_listed(&state.pool, tenant_id, run_id, filter)
        .await
        .map_err(ApiError::from)?
    {
        Some(row) => Some(
            RunRow {
                run: run_view(&row, state.clock.now())?,
            }
            .render()?,
        ),
        None => None,
    };
    Ok(RowUpdate {
        id: run_id.to_string(),
        html,
    })
}

/// `GET /ui/tenants?tenant_id=N` parameters: the admin's tenant picker.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPick {
    tenant_id: String,
}

/// `GET /ui/tenants`: to the runs of the tenant picked (the runs page checks the caller may
/// see them).
pub async fn pick_tenant(
    _viewer: Viewer,
    ForPage(Query(pick)): ForPage<Query<TenantPick>>,
) -> Result<Redirect, PageError> {
    let tenant: TenantId =
        pick.tenant_id.trim().parse().map_err(|_| {
            ApiError::bad_field("tenant_id", "must be a tenant id (a positive number)")
        })?;
    Ok(Redirect::to(&runs_url(tenant.get())))
}
