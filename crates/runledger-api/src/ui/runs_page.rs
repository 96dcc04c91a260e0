//! The runs of a tenant: search and filters, newest first, cursor pages, the count of matching
//! runs, and live rows.
//!
//! The page runs the OperationRun read model's own list and count queries, with the list
//! route's page tokens (`crate::runs_queries::RunList`); its filter form speaks the browser's
//! language (empty fields, calendar dates, one state for status and outcome, a user id or a
//! name as initiator) and is turned into the read model's typed filter here, with the list
//! route's own parsers. The type field matches run types by prefix, so `inventory` finds every
//! `inventory.*` run; the run field matches ids by prefix; `key=value` searches the context and
//! the identity (docs/adr/0019). The filter is the page's query string: a saved or shared URL is
//! the same list.

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
use runledger_projections::operation_runs::{RunFilter, RunOrder, count_runs, run_if_listed};
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
use crate::runs_queries::{self, RunList, snapshot_of_row, type_prefix};

/// How many runs a page shows.
const PAGE_SIZE: u32 = 50;

/// The filter form, as a browser sends it: every field may be empty.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunsPageQuery {
    /// Run ids starting with these hex digits.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run: String,
    /// Run types starting with this.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub run_type: String,
    /// One status.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// One outcome.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub outcome: String,
    /// The combined indicator the list shows: `queued`, `running`, or an outcome (completed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// The initiating user's id, or the initiator's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub initiator: String,
    /// `key=value` of the context or identity.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub attribute: String,
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
        // A number is a user id; anything else the initiator's name.
        let initiator_text = text(&self.initiator);
        let initiator_user_id = initiator_text
            .as_deref()
            .and_then(|text| text.parse::<i64>().ok());
        let initiator_name = initiator_text
            .filter(|_| initiator_user_id.is_none())
            .map(|name| runs_queries::initiator_name(&name).map_err(|e| in_field(e, "initiator")))
            .transpose()?;
        let created_after = day("created_from", &self.created_from)?;
        // The last day is included: before the start of the next one.
        let created_before =
            day("created_to", &self.created_to)?.map(|day| day + chrono::Duration::days(1));
        let mut statuses: Vec<RunStatus> = text(&self.status)
            .map(|s| s.parse::<RunStatus>())
            .transpose()?
            .into_iter()
            .collect();
        let mut outcomes: Vec<Outcome> = text(&self.outcome)
            .map(|o| o.parse::<Outcome>())
            .transpose()?
            .into_iter()
            .collect();
        if let Some(state) = text(&self.state) {
            match state.as_str() {
                "queued" => statuses.push(RunStatus::Queued),
                "running" => statuses.push(RunStatus::Running),
                outcome => outcomes.push(outcome.parse::<Outcome>().map_err(|_| {
                    ApiError::bad_field(
                        "state",
                        "must be queued, running, or an outcome (succeeded, partially_succeeded, failed, cancelled)",
                    )
                })?),
            }
        }
        Ok(RunFilter {
            run_type: None,
            type_prefix: text(&self.run_type)
                .as_deref()
                .map(type_prefix)
                .transpose()?,
            statuses,
            outcomes,
            initiator: initiator_user_id
                .map(|id| runs_queries::initiator(id).map_err(|e| in_field(e, "initiator")))
                .transpose()?,
            initiator_name,
            id_prefix: text(&self.run)
                .as_deref()
                .map(|p| runs_queries::run_id_prefix(p).map_err(|e| in_field(e, "run")))
                .transpose()?,
            attribute: text(&self.attribute)
                .as_deref()
                .map(runs_queries::attribute)
                .transpose()?,
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

/// The list route's refusal of a parameter, naming the form's field instead (the page's
/// fields are named for people, the route's parameters for programs).
fn in_field(error: ApiError, field: &'static str) -> ApiError {
    match error {
        ApiError::BadRequest { detail, .. } => ApiError::bad_field(field, detail),
        other => other,
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
    state_options: Vec<SelectOption>,
    runs: Vec<RunView>,
    /// How many runs match the filters in all pages; `None` when it could not be counted.
    matching: Option<i64>,
    /// `?list=…`: the list's query string, which each row's link carries so that the run page
    /// leads back to this list (empty for the unfiltered first page).
    list_suffix: String,
    banner: Option<Banner>,
    /// Absent when the read model's checkpoint is unknown.
    live_url: Option<String>,
    first_page: bool,
    first_url: String,
    next_url: Option<String>,
}

#[derive(Template)]
#[template(path = "run_row.html")]
struct RunRow {
    run: RunView,
    list_suffix: String,
}

/// `?list=<query>` for a row's link, or nothing when the list has no query.
fn list_suffix(list_query: &str) -> String {
    if list_query.is_empty() {
        String::new()
    } else {
        let encoded: String = form_urlencoded::byte_serialize(list_query.as_bytes()).collect();
        format!("?list={encoded}")
    }
}

/// The run's view, for a page rendered at `now`.
pub fn run_view(row: &OperationRunRow, now: DateTime<Utc>) -> Result<RunView, ApiError> {
    let run = snapshot_of_row(row)?;
    let url = runledger_core::view_url("/ui", run.tenant_id, run.id);
    Ok(RunView::new(&run, url, row.heartbeat_at, now))
}

/// The combined states the filter offers, in the list's order, with the seed's labels.
fn state_options(selected: &str) -> Vec<SelectOption> {
    let active = [RunStatus::Queued, RunStatus::Running]
        .into_iter()
        .map(|s| (s.as_str(), s.label()));
    let completed = Outcome::ALL
        .iter()
        .copied()
        .filter(|o| *o != Outcome::Pending)
        .map(|o| (o.as_str(), o.label()));
    active
        .chain(completed)
        .map(|(value, label)| SelectOption {
            value,
            label,
            selected: selected == value,
        })
        .collect()
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
    let filter = filters.filter()?;
    let list = RunList {
        filter: filter.clone(),
        order: RunOrder::CreatedDesc,
    }
    .page(tenant_id, PAGE_SIZE, text(&filters.page_token).as_deref())?;
    let (rows, next_page_token, matching) = if read_model.is_built() {
        let pool = crate::read_your_writes::read_pool(&state, None).await?;
        let (page, next_page_token) = list.fetch(&pool, tenant_id).await?;
        let matching = count_runs(&pool, tenant_id, &filter, &[])
            .await
            .inspect_err(|error| tracing::warn!(%error, "the matching runs could not be counted"))
            .ok()
            .map(|counts| counts.iter().map(|c| c.count).sum());
        (page.rows, next_page_token, matching)
    } else {
        (Vec::new(), None, Some(0))
    };
    let now = state.clock.now();
    let runs = rows
        .iter()
        .map(|row| run_view(row, now))
        .collect::<Result<Vec<_>, _>>()?;
    let base = runs_url(tenant_id.get());
    let first_query = filters.with_page(None);
    let page = RunsPage {
        nav: Some(Nav::of(&state, &viewer, tenant_id.get()).await),
        tenant_id: tenant_id.get(),
        state_options: state_options(&filters.state),
        runs,
        matching,
        list_suffix: list_suffix(&filters.with_page(text(&filters.page_token).as_deref())),
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
        first_url: if first_query.is_empty() {
            base.clone()
        } else {
            format!("{base}?{first_query}")
        },
        next_url: next_page_token
            .as_deref()
            .map(|token| format!("{base}?{}", filters.with_page(Some(token)))),
        filters,
    };
    Ok(Html(page.render()?).into_response())
}

/// The list a run page leads back to: `list` (the query string a row's link carried) when it is
/// a valid filter of the runs page, else the unfiltered list.
pub fn back_to_list(tenant_id: i64, list: Option<&str>) -> String {
    let base = runs_url(tenant_id);
    list.and_then(|list| serde_html_form::from_str::<RunsPageQuery>(list).ok())
        .filter(|query| query.filter().is_ok())
        .map(|query| query.with_page(text(&query.page_token).as_deref()))
        .filter(|query| !query.is_empty())
        .map_or(base.clone(), |query| format!("{base}?{query}"))
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
    let list_query = list_suffix(&filters.with_page(None));
    let updates = projected_events(&state, tenant_id, from).then(move |event| {
        let state = state.clone();
        let filter = filter.clone();
        let list_query = list_query.clone();
        async move {
            let cursor = runledger_store::LogCursor::after(&event).to_string();
            let update = row_update(&state, tenant_id, event.run_id, &filter, list_query)
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
    list_query: String,
) -> Result<RowUpdate, PageError> {
    let html = match run_if_listed(&state.pool, tenant_id, run_id, filter)
        .await
        .map_err(ApiError::from)?
    {
        Some(row) => Some(
            RunRow {
                run: run_view(&row, state.clock.now())?,
                list_suffix: list_query,
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
