//! Query routes (reader role): list runs with filters and keyset pages, get one run (with an
//! ETag), and count runs by status and outcome.
//!
//! Each route parses its query string into the OperationRun read model's typed query
//! (`runledger_projections::operation_runs::query`), runs it, and renders the rows; the SQL is
//! the read model's. A page token is opaque: it carries where the page ended and which list
//! (filters and order) it is a page of ([`crate::page`]).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use runledger_core::{Outcome, RunSnapshot, RunStatus, RunType, TenantId, UserId};
use runledger_projections::operation_runs::query;
use runledger_projections::operation_runs::{
    Attribute, CountGroup, OperationRunRow, RunFilter, RunIdPrefix, RunOrder, RunPageQuery,
    RunPosition, RunQueryError, TypePrefix,
};
use runledger_wire::{OperationRun, RunCount, RunCountGroup, RunPage, RunQuery};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Authorized, needs};
use crate::error::ApiError;
use crate::extract::{Query, RunPath, TenantPath};
use crate::openapi::LAST_EVENT_ID;
use crate::page::PageToken;
use crate::run_json::run_json;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_runs))
        .routes(routes!(count_runs))
        .routes(routes!(get_run))
}

/// A row of the read model as the API shows it.
pub(crate) fn run_of_row(
    config: &crate::ApiConfig,
    row: &OperationRunRow,
) -> Result<OperationRun, ApiError> {
    run_json(config, &snapshot_of_row(row)?, row.heartbeat_at)
}

/// The run a read-model row holds; a row that does not parse is a server fault.
pub(crate) fn snapshot_of_row(row: &OperationRunRow) -> Result<RunSnapshot, ApiError> {
    row.to_snapshot()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))
}

/// The list's and the count's parameters (`runledger_wire::RunQuery`) as the read model's typed
/// query.
pub(crate) trait RunQueryExt {
    /// The filters, as the read model's typed filter.
    fn filter(&self) -> Result<RunFilter, ApiError>;

    /// The page of the tenant's list these parameters ask for.
    fn page(&self, tenant: TenantId) -> Result<ListPage, ApiError>;
}

impl RunQueryExt for RunQuery {
    fn filter(&self) -> Result<RunFilter, ApiError> {
        Ok(RunFilter {
            run_type: self.run_type.as_deref().map(RunType::parse).transpose()?,
            type_prefix: self.type_prefix.as_deref().map(type_prefix).transpose()?,
            statuses: self
                .status
                .iter()
                .map(|s| s.parse::<RunStatus>())
                .collect::<Result<_, _>>()?,
            outcomes: self
                .outcome
                .iter()
                .map(|o| o.parse::<Outcome>())
                .collect::<Result<_, _>>()?,
            initiator: self.initiator_user_id.map(initiator).transpose()?,
            initiator_name: self
                .initiator_name
                .as_deref()
                .map(initiator_name)
                .transpose()?,
            id_prefix: self
                .run_id_prefix
                .as_deref()
                .map(run_id_prefix)
                .transpose()?,
            attribute: self.attribute.as_deref().map(attribute).transpose()?,
            created_after: self.created_after,
            created_before: self.created_before,
        })
    }

    fn page(&self, tenant: TenantId) -> Result<ListPage, ApiError> {
        if self.watch.is_some() {
            return Err(ApiError::bad_field(
                "watch",
                "belongs to the list, not runs:count",
            ));
        }
        if self.group_by.is_some() {
            return Err(ApiError::bad_field(
                "group_by",
                "belongs to runs:count, not the list",
            ));
        }
        let list = RunList {
            filter: self.filter()?,
            order: parse_order(self.sort.as_deref())?,
        };
        let size = self.page_size.unwrap_or(50);
        if !(1..=500).contains(&size) {
            return Err(ApiError::bad_field(
                "page_size",
                "must be between 1 and 500",
            ));
        }
        list.page(tenant, size, self.page_token.as_deref())
    }
}

/// The run type prefix of a filter.
pub(crate) fn type_prefix(text: &str) -> Result<TypePrefix, ApiError> {
    TypePrefix::parse(text).map_err(|error| ApiError::bad_field("type_prefix", error.to_string()))
}

/// The initiating user of a filter.
pub(crate) fn initiator(id: i64) -> Result<UserId, ApiError> {
    UserId::new(id).map_err(|e| ApiError::bad_field("initiator_user_id", e.reason))
}

/// The initiator's name of a filter: 1 to 200 characters.
pub(crate) fn initiator_name(text: &str) -> Result<String, ApiError> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::bad_field(
            "initiator_name",
            "must be 1 to 200 characters",
        ));
    }
    Ok(name.to_owned())
}

/// The run id prefix of a filter.
pub(crate) fn run_id_prefix(text: &str) -> Result<RunIdPrefix, ApiError> {
    RunIdPrefix::parse(text)
        .map_err(|error| ApiError::bad_field("run_id_prefix", error.to_string()))
}

/// The `key=value` of a filter.
pub(crate) fn attribute(text: &str) -> Result<Attribute, ApiError> {
    Attribute::parse(text).map_err(|error| ApiError::bad_field("attribute", error.to_string()))
}

/// A list of a tenant's runs, as the list route and the runs page ask for one: which runs, in
/// which order.
pub(crate) struct RunList {
    pub(crate) filter: RunFilter,
    pub(crate) order: RunOrder,
}

impl RunList {
    /// The page of `size` of `tenant`'s runs after the one `page_token` ended (the first page
    /// without one).
    ///
    /// # Errors
    /// A 400 naming `page_token` when it is not a token of this list (another tenant's list
    /// included).
    pub(crate) fn page(
        self,
        tenant: TenantId,
        size: u32,
        page_token: Option<&str>,
    ) -> Result<ListPage, ApiError> {
        let digest = list_digest(tenant, &self.filter, self.order);
        let after = page_token
            .map(|t| PageToken::decode(t, &digest))
            .transpose()?
            .map(|token| RunPosition {
                time: token.t,
                id: token.id,
            });
        let query = RunPageQuery {
            filter: self.filter,
            order: self.order,
            size,
            after,
        };
        Ok(ListPage { query, digest })
    }
}

/// A page of a list, and the digest its page tokens carry.
pub(crate) struct ListPage {
    query: RunPageQuery,
    digest: String,
}

impl ListPage {
    /// The page's runs in the tenant, and the token of the next page. The caller has checked
    /// the tenant.
    pub(crate) async fn fetch(
        self,
        pool: &PgPool,
        tenant_id: TenantId,
    ) -> Result<(query::RunPage, Option<String>), ApiError> {
        let page = query::run_page(pool, tenant_id, &self.query)
            .await
            .map_err(|error| match error {
                RunQueryError::PositionOutsideOrder => PageToken::not_of_this_list(),
                RunQueryError::Database(error) => error.into(),
            })?;
        let digest = self.digest;
        let next_page_token = page.next.map(|next| {
            PageToken {
                f: digest,
                t: next.time,
                id: next.id,
            }
            .encode()
        });
        Ok((page, next_page_token))
    }
}

fn parse_order(text: Option<&str>) -> Result<RunOrder, ApiError> {
    match text.unwrap_or("-created_at") {
        "-created_at" => Ok(RunOrder::CreatedDesc),
        "created_at" => Ok(RunOrder::CreatedAsc),
        "-completed_at" => Ok(RunOrder::CompletedDesc),
        _ => Err(ApiError::bad_field(
            "sort",
            "must be one of: -created_at, created_at, -completed_at",
        )),
    }
}

fn order_name(order: RunOrder) -> &'static str {
    match order {
        RunOrder::CreatedDesc => "-created_at",
        RunOrder::CreatedAsc => "created_at",
        RunOrder::CompletedDesc => "-completed_at",
    }
}

/// The filters as a list's digest covers them; the field names and their order are part of
/// every page token issued, so a token stays valid across versions of the server.
#[derive(Serialize)]
struct DigestedFilters<'a> {
    run_type: Option<&'a str>,
    type_prefix: Option<&'a str>,
    status: Vec<&'static str>,
    outcome: Vec<&'static str>,
    initiator_user_id: Option<i64>,
    created_after: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
    // Added later: left out when absent, so that tokens issued before them stay valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    initiator_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id_prefix: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attribute: Option<String>,
}

/// A digest of the tenant, filters and order a page token belongs to: a token of another
/// tenant's list is refused like one of other filters (it would reveal nothing, but a token is
/// the list's, not a cursor to reuse anywhere).
fn list_digest(tenant: TenantId, filter: &RunFilter, order: RunOrder) -> String {
    let filters = DigestedFilters {
        run_type: filter.run_type.as_ref().map(RunType::as_str),
        type_prefix: filter.type_prefix.as_ref().map(TypePrefix::as_str),
        status: filter.statuses.iter().map(|s| s.as_str()).collect(),
        outcome: filter.outcomes.iter().map(|o| o.as_str()).collect(),
        initiator_user_id: filter.initiator.map(UserId::get),
        created_after: filter.created_after,
        created_before: filter.created_before,
        initiator_name: filter.initiator_name.as_deref(),
        run_id_prefix: filter.id_prefix.as_ref().map(RunIdPrefix::as_str),
        attribute: filter.attribute.as_ref().map(Attribute::text),
    };
    PageToken::digest(&(tenant.get(), filters, order_name(order)))
}

/// List runs: filtered, sorted, in keyset pages.
///
/// With `watch=true`, the runs entering, changing in and leaving the filter, as server-sent
/// events.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/runs", tag = "queries",
    params(("tenant_id" = i64, Path), RunQuery,
        ("Last-Event-ID" = Option<String>, Header, description = LAST_EVENT_ID)),
    responses((status = 200, description = "A page of runs; with `watch=true`, server-sent events (`entered`, `changed`: `{\"run\": …}`; `left`: `{\"id\": …}`; `id` = a log cursor for `Last-Event-ID`)",
            content((RunPage = "application/json"), (String = "text/event-stream"))),
        (status = 503, description = "`min_position` not reached in time (`projection-behind`), or the server is unavailable for now")),
    security(("bearer" = [])))]
pub(crate) async fn list_runs(
    State(state): State<AppState>,
    Authorized {
        path: TenantPath { tenant_id },
        ..
    }: Authorized<TenantPath, needs::Reader>,
    Query(params): Query<RunQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if params.watch == Some(true) {
        let paged = [
            ("sort", params.sort.is_some()),
            ("page_size", params.page_size.is_some()),
            ("page_token", params.page_token.is_some()),
            ("group_by", params.group_by.is_some()),
            ("min_position", params.min_position.is_some()),
        ];
        if let Some(&(field, _)) = paged.iter().find(|(_, given)| *given) {
            return Err(ApiError::bad_field(field, "does not apply to a watch"));
        }
        return crate::runs_watch::watch_list(state, tenant_id, params.filter()?, &headers).await;
    }
    let page = RunQuery {
        watch: None,
        ..params.clone()
    }
    .page(tenant_id)?;
    let pool = crate::read_your_writes::read_pool(&state, params.min_position).await?;
    let (page, next_page_token) = page.fetch(&pool, tenant_id).await?;
    let runs = page
        .rows
        .iter()
        .map(|row| run_of_row(&state.config, row))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(RunPage {
        runs,
        next_page_token,
    })
    .into_response())
}

/// `GET /v1/tenants/{tenant_id}/runs/{run_id}` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// Wait until the read model has applied this log position (read-your-writes).
    pub min_position: Option<i64>,
    /// `true` keeps the response open as server-sent events: a `run` event with the run now,
    /// then one each time it changes, ending after it completes.
    pub watch: Option<bool>,
}

/// Get a run.
///
/// With `watch=true`, the run now and at each change, as server-sent events.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/runs/{run_id}", tag = "queries",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), GetParams,
        ("If-None-Match" = Option<String>, Header, description = "The run's `ETag`: 304 while it is unchanged"),
        ("Last-Event-ID" = Option<String>, Header, description = LAST_EVENT_ID)),
    responses((status = 200, description = "The OperationRun, with done, version, its lifecycle and view_url. With `watch=true`, server-sent `run` events (the run now, then at each change; the stream ends after completion; `id` = a log cursor for `Last-Event-ID`)",
            content((OperationRun = "application/json"), (String = "text/event-stream")),
            headers(("ETag" = String, description = "The run's version, with the last heartbeat's microseconds after a `-` once it heartbeats (`\"3\"`, `\"3-1790000000123456\"`)"))),
        (status = 304, description = "Unchanged since the `If-None-Match` entity tag",
            headers(("ETag" = String, description = "The run's entity tag"))),
        (status = 503, description = "`min_position` not reached in time (`projection-behind`), or the server is unavailable for now")),
    security(("bearer" = [])))]
pub(crate) async fn get_run(
    State(state): State<AppState>,
    Authorized { path, .. }: Authorized<RunPath, needs::Reader>,
    Query(params): Query<GetParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if params.watch == Some(true) {
        crate::read_your_writes::wait_for(&state, params.min_position).await?;
        return crate::runs_watch::watch_run(state, path.tenant_id, path.run_id, &headers).await;
    }
    let pool = crate::read_your_writes::read_pool(&state, params.min_position).await?;
    let row = query::find_run(&pool, path.tenant_id, path.run_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let etag = entity_tag(&row);
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.into()))?;
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim().trim_start_matches("W/") == etag || tag.trim() == "*")
        });
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    Ok((
        [(header::ETAG, etag_value)],
        Json(run_of_row(&state.config, &row)?),
    )
        .into_response())
}

/// A run's entity tag: its version, which `If-Match` takes; and, once it heartbeats, the
/// heartbeat's microseconds after a `-` (a heartbeat changes the run's JSON, not its version,
/// and a cached copy must not outlive it). `If-Match` reads the version before the `-`.
fn entity_tag(row: &OperationRunRow) -> String {
    match row.heartbeat_at {
        None => format!("\"{}\"", row.version),
        Some(at) => format!("\"{}-{}\"", row.version, at.timestamp_micros()),
    }
}

/// The groups `group_by` names, in its order, each once.
fn count_groups(group_by: Option<&str>) -> Result<Vec<CountGroup>, ApiError> {
    let mut groups = Vec::new();
    for part in group_by
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let group = match part {
            "status" => CountGroup::Status,
            "outcome" => CountGroup::Outcome,
            _ => {
                return Err(ApiError::bad_field(
                    "group_by",
                    "must list status and/or outcome",
                ));
            }
        };
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    Ok(groups)
}

/// Count runs: how many match a filter, in all and per group.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/runs:count", tag = "queries",
    params(("tenant_id" = i64, Path), RunQuery),
    responses((status = 200, body = RunCount, description = "How many runs match, in all and per group")),
    security(("bearer" = [])))]
pub(crate) async fn count_runs(
    State(state): State<AppState>,
    Authorized {
        path: TenantPath { tenant_id },
        ..
    }: Authorized<TenantPath, needs::Reader>,
    Query(params): Query<RunQuery>,
) -> Result<Json<RunCount>, ApiError> {
    for (field, given) in [
        ("sort", params.sort.is_some()),
        ("page_size", params.page_size.is_some()),
        ("page_token", params.page_token.is_some()),
    ] {
        if given {
            return Err(ApiError::bad_field(
                field,
                "sort and pages belong to the list, not runs:count",
            ));
        }
    }
    let filter = params.filter()?;
    let groups = count_groups(params.group_by.as_deref())?;
    let pool = crate::read_your_writes::read_pool(&state, params.min_position).await?;
    let counts = query::count_runs(&pool, tenant_id, &filter, &groups).await?;
    let total: i64 = counts.iter().map(|c| c.count).sum();
    let groups = if groups.is_empty() {
        Vec::new()
    } else {
        counts
            .into_iter()
            .map(|c| {
                Ok(RunCountGroup {
                    count: c.count,
                    status: groups
                        .contains(&CountGroup::Status)
                        .then(|| stored_name(c.status))
                        .transpose()?,
                    outcome: groups
                        .contains(&CountGroup::Outcome)
                        .then(|| stored_name(c.outcome))
                        .transpose()?,
                })
            })
            .collect::<Result<_, ApiError>>()?
    };
    Ok(Json(RunCount { total, groups }))
}

/// A status or outcome as the read model stores it, as the wire crate's enum.
fn stored_name<T: serde::de::DeserializeOwned>(name: Option<String>) -> Result<T, ApiError> {
    serde_json::from_value(Value::from(name)).map_err(|error| {
        ApiError::Internal(anyhow::Error::new(error).context("a stored status or outcome"))
    })
}
