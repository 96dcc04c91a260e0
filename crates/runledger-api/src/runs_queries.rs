//! Query routes (reader role): list runs with filters and keyset pages, get one run (with an
//! ETag), and count runs by status and outcome. They read only the OperationRun read model.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use runledger_core::{Outcome, RunId, RunSnapshot, RunStatus, RunType, TenantId, UserId};
use runledger_projections::OperationRunRow;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{Query, RunPath, TenantPath};
use crate::page::{Direction, PageToken, push_past_page};
use crate::run_json::run_json;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant_id}/runs", get(list_runs))
        .route("/v1/tenants/{tenant_id}/runs:count", get(count_runs))
        .route("/v1/tenants/{tenant_id}/runs/{run_id}", get(get_run))
}

/// A row of the read model as the API shows it.
fn run_of_row(config: &crate::ApiConfig, row: &OperationRunRow) -> Result<Value, ApiError> {
    Ok(run_json(config, &snapshot_of_row(row)?))
}

/// The run a read-model row holds; a row that does not parse is a server fault.
pub(crate) fn snapshot_of_row(row: &OperationRunRow) -> Result<RunSnapshot, ApiError> {
    row.to_snapshot()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))
}

/// The query parameters of the run list and the run count (one struct, so that a misspelled
/// parameter is refused rather than silently ignored).
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Exact run type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub run_type: Option<String>,
    /// Run types starting with this prefix (e.g. `inventory.`).
    pub type_prefix: Option<String>,
    /// Status (repeatable).
    #[serde(default)]
    pub status: Vec<String>,
    /// Outcome (repeatable).
    #[serde(default)]
    pub outcome: Vec<String>,
    /// Initiating user.
    pub initiator_user_id: Option<i64>,
    /// Created at or after (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
    /// List only: `-created_at` (default), `created_at` or `-completed_at`.
    pub sort: Option<String>,
    /// List only: 1–500, default 50.
    pub page_size: Option<u32>,
    /// List only: the `next_page_token` of the previous page.
    pub page_token: Option<String>,
    /// Count only: comma-separated `status`, `outcome`, or both.
    pub group_by: Option<String>,
    /// Wait until the read model has applied this log position (read-your-writes).
    pub min_position: Option<i64>,
}

/// Parsed filters.
#[derive(Debug, Default, Serialize)]
struct ValidFilters {
    run_type: Option<String>,
    type_prefix: Option<String>,
    status: Vec<String>,
    outcome: Vec<String>,
    initiator_user_id: Option<i64>,
    created_after: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
}

impl TryFrom<&RunQuery> for ValidFilters {
    type Error = ApiError;

    fn try_from(filters: &RunQuery) -> Result<Self, ApiError> {
        let run_type = filters
            .run_type
            .as_deref()
            .map(RunType::parse)
            .transpose()?
            .map(|t| t.to_string());
        if let Some(prefix) = &filters.type_prefix
            && (prefix.len() > RunType::MAX_LEN
                || !prefix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'))
        {
            return Err(ApiError::bad_field(
                "type_prefix",
                "must be at most 100 characters of [a-z0-9_.]",
            ));
        }
        let status = filters
            .status
            .iter()
            .map(|s| s.parse::<RunStatus>().map(|s| s.as_str().to_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        let outcome = filters
            .outcome
            .iter()
            .map(|o| o.parse::<Outcome>().map(|o| o.as_str().to_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(user) = filters.initiator_user_id {
            UserId::new(user).map_err(|e| ApiError::bad_field("initiator_user_id", e.reason))?;
        }
        Ok(ValidFilters {
            run_type,
            type_prefix: filters.type_prefix.clone(),
            status,
            outcome,
            initiator_user_id: filters.initiator_user_id,
            created_after: filters.created_after,
            created_before: filters.created_before,
        })
    }
}

impl ValidFilters {
    /// Appends `AND …` conditions for the filters (the tenant condition comes first).
    fn push_conditions(&self, query: &mut QueryBuilder<'_, Postgres>) {
        if let Some(run_type) = &self.run_type {
            query.push(" AND type = ").push_bind(run_type.clone());
        }
        if let Some(prefix) = &self.type_prefix {
            // `[a-z0-9_.]` only: escape `_`, the one LIKE wildcard it can hold.
            query
                .push(" AND type LIKE ")
                .push_bind(format!("{}%", prefix.replace('_', "\\_")));
        }
        if !self.status.is_empty() {
            query
                .push(" AND status = ANY(")
                .push_bind(self.status.clone())
                .push(")");
        }
        if !self.outcome.is_empty() {
            query
                .push(" AND outcome = ANY(")
                .push_bind(self.outcome.clone())
                .push(")");
        }
        if let Some(user) = self.initiator_user_id {
            query.push(" AND user_id = ").push_bind(user);
        }
        if let Some(after) = self.created_after {
            query.push(" AND created_at >= ").push_bind(after);
        }
        if let Some(before) = self.created_before {
            query.push(" AND created_at < ").push_bind(before);
        }
    }

    /// A digest of the filters and sort a page token belongs to.
    fn digest(&self, sort: Sort) -> String {
        let text = serde_json::to_string(&(self, sort.as_str())).unwrap_or_default();
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }
}

/// The orders a list can be sorted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    CreatedDesc,
    CreatedAsc,
    CompletedDesc,
}

impl Sort {
    fn parse(text: Option<&str>) -> Result<Self, ApiError> {
        match text.unwrap_or("-created_at") {
            "-created_at" => Ok(Sort::CreatedDesc),
            "created_at" => Ok(Sort::CreatedAsc),
            "-completed_at" => Ok(Sort::CompletedDesc),
            _ => Err(ApiError::bad_field(
                "sort",
                "must be one of: -created_at, created_at, -completed_at",
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Sort::CreatedDesc => "-created_at",
            Sort::CreatedAsc => "created_at",
            Sort::CompletedDesc => "-completed_at",
        }
    }
}

/// A page of runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    /// The runs, in the requested order.
    pub runs: Vec<Value>,
    /// Pass as `page_token` for the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/runs", tag = "queries",
    params(("tenant_id" = i64, Path), RunQuery),
    responses((status = 200, body = RunPage), (status = 400), (status = 401), (status = 403), (status = 404), (status = 503, description = "min_position not reached in time")),
    security(("bearer" = [])))]
pub(crate) async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    TenantPath { tenant_id }: TenantPath,
    Query(params): Query<RunQuery>,
) -> Result<Json<RunPage>, ApiError> {
    caller.authorize(tenant_id, Role::Reader)?;
    let page = run_page(&state, tenant_id, &params).await?;
    let runs = page
        .rows
        .iter()
        .map(|row| run_of_row(&state.config, row))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(RunPage {
        runs,
        next_page_token: page.next_page_token,
    }))
}

/// A page of read-model rows.
#[derive(Debug, Default)]
pub(crate) struct RowPage {
    /// The rows, in the requested order.
    pub rows: Vec<OperationRunRow>,
    /// The token of the next page, if there is one.
    pub next_page_token: Option<String>,
}

/// One page of a tenant's runs, filtered and sorted as `params` say: the list route's query,
/// which the monitoring pages share. The caller has checked the tenant.
pub(crate) async fn run_page(
    state: &AppState,
    tenant_id: TenantId,
    params: &RunQuery,
) -> Result<RowPage, ApiError> {
    if params.group_by.is_some() {
        return Err(ApiError::bad_field(
            "group_by",
            "belongs to runs:count, not the list",
        ));
    }
    let filters = ValidFilters::try_from(params)?;
    let sort = Sort::parse(params.sort.as_deref())?;
    let page_size = params.page_size.unwrap_or(50);
    if !(1..=500).contains(&page_size) {
        return Err(ApiError::bad_field(
            "page_size",
            "must be between 1 and 500",
        ));
    }
    let digest = filters.digest(sort);
    let after = params
        .page_token
        .as_deref()
        .map(|t| PageToken::decode(t, &digest))
        .transpose()?;
    crate::read_your_writes::wait_for(state, params.min_position).await?;

    let mut query = QueryBuilder::new(format!(
        "SELECT {} FROM operation_runs WHERE tenant_id = ",
        OperationRunRow::COLUMNS
    ));
    query.push_bind(tenant_id.get());
    filters.push_conditions(&mut query);
    if let Some(after) = &after {
        match (sort, after.t) {
            (Sort::CreatedDesc, Some(t)) => {
                query.push(" AND ");
                push_past_page(&mut query, "created_at", Direction::Descending, t, after.id);
            }
            (Sort::CreatedAsc, Some(t)) => {
                query.push(" AND ");
                push_past_page(&mut query, "created_at", Direction::Ascending, t, after.id);
            }
            (Sort::CompletedDesc, Some(t)) => {
                // Runs not completed sort last: every one of them is past a completed run.
                query.push(" AND (");
                push_past_page(
                    &mut query,
                    "completed_at",
                    Direction::Descending,
                    t,
                    after.id,
                );
                query.push(" OR completed_at IS NULL)");
            }
            (Sort::CompletedDesc, None) => {
                query
                    .push(" AND completed_at IS NULL AND id < ")
                    .push_bind(after.id);
            }
            (_, None) => {
                return Err(ApiError::bad_field(
                    "page_token",
                    "is not a page token of this list",
                ));
            }
        }
    }
    query.push(match sort {
        Sort::CreatedDesc => " ORDER BY created_at DESC, id DESC",
        Sort::CreatedAsc => " ORDER BY created_at ASC, id ASC",
        Sort::CompletedDesc => " ORDER BY completed_at DESC NULLS LAST, id DESC",
    });
    query.push(" LIMIT ").push_bind(i64::from(page_size) + 1);
    let mut rows: Vec<OperationRunRow> = query.build_query_as().fetch_all(&state.pool).await?;
    let more = rows.len() > page_size as usize;
    rows.truncate(page_size as usize);
    let next_page_token = match rows.last() {
        Some(last) if more => Some(
            PageToken {
                f: digest,
                t: match sort {
                    Sort::CreatedDesc | Sort::CreatedAsc => Some(last.created_at),
                    Sort::CompletedDesc => last.completed_at,
                },
                id: last.id,
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(RowPage {
        rows,
        next_page_token,
    })
}

/// The run `run_id` of the tenant if it passes the list filters of `params` (sort and pages
/// aside): what a live list needs to know of a run that changed.
pub(crate) async fn run_if_listed(
    state: &AppState,
    tenant_id: TenantId,
    run_id: RunId,
    params: &RunQuery,
) -> Result<Option<OperationRunRow>, ApiError> {
    let filters = ValidFilters::try_from(params)?;
    let mut query = QueryBuilder::new(format!(
        "SELECT {} FROM operation_runs WHERE tenant_id = ",
        OperationRunRow::COLUMNS
    ));
    query.push_bind(tenant_id.get());
    query.push(" AND id = ").push_bind(run_id.as_uuid());
    filters.push_conditions(&mut query);
    Ok(query.build_query_as().fetch_optional(&state.pool).await?)
}

/// The tenant's run `run_id` in the read model.
pub(crate) async fn find_run(
    state: &AppState,
    tenant_id: TenantId,
    run_id: RunId,
) -> Result<Option<OperationRunRow>, ApiError> {
    run_if_listed(state, tenant_id, run_id, &RunQuery::default()).await
}

/// `GET /v1/tenants/{tenant_id}/runs/{run_id}` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// Wait until the read model has applied this log position (read-your-writes).
    pub min_position: Option<i64>,
}

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/runs/{run_id}", tag = "queries",
    params(("tenant_id" = i64, Path), ("run_id" = uuid::Uuid, Path), GetParams, ("If-None-Match" = Option<String>, Header)),
    responses((status = 200, description = "The OperationRun, with done, version and view_url; ETag is the version"), (status = 304), (status = 404), (status = 503)),
    security(("bearer" = [])))]
pub(crate) async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    path: RunPath,
    Query(params): Query<GetParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.authorize(path.tenant_id, Role::Reader)?;
    crate::read_your_writes::wait_for(&state, params.min_position).await?;
    let row = find_run(&state, path.tenant_id, path.run_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let etag = format!("\"{}\"", row.version);
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

#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/runs:count", tag = "queries",
    params(("tenant_id" = i64, Path), RunQuery),
    responses((status = 200, description = "`{total, groups: [{status?, outcome?, count}]}`"), (status = 400), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn count_runs(
    State(state): State<AppState>,
    caller: Caller,
    TenantPath { tenant_id }: TenantPath,
    Query(params): Query<RunQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.authorize(tenant_id, Role::Reader)?;
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
    let filters = ValidFilters::try_from(&params)?;
    let mut columns: Vec<&'static str> = Vec::new();
    for part in params
        .group_by
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let column = match part {
            "status" => "status",
            "outcome" => "outcome",
            _ => {
                return Err(ApiError::bad_field(
                    "group_by",
                    "must list status and/or outcome",
                ));
            }
        };
        if !columns.contains(&column) {
            columns.push(column);
        }
    }
    crate::read_your_writes::wait_for(&state, params.min_position).await?;
    let group_status = columns.contains(&"status");
    let group_outcome = columns.contains(&"outcome");
    let mut query = QueryBuilder::new(format!(
        "SELECT {}, {}, count(*) FROM operation_runs WHERE tenant_id = ",
        if group_status { "status" } else { "NULL::text" },
        if group_outcome {
            "outcome"
        } else {
            "NULL::text"
        },
    ));
    query.push_bind(tenant_id.get());
    filters.push_conditions(&mut query);
    if !columns.is_empty() {
        query
            .push(" GROUP BY ")
            .push(columns.join(", "))
            .push(" ORDER BY ")
            .push(columns.join(", "));
    }
    let rows: Vec<(Option<String>, Option<String>, i64)> =
        query.build_query_as().fetch_all(&state.pool).await?;
    let total: i64 = rows.iter().map(|(_, _, count)| count).sum();
    let groups: Vec<Value> = if columns.is_empty() {
        Vec::new()
    } else {
        rows.into_iter()
            .map(|(status, outcome, count)| {
                let mut group = json!({ "count": count });
                if group_status {
                    group["status"] = json!(status);
                }
                if group_outcome {
                    group["outcome"] = json!(outcome);
                }
                group
            })
            .collect()
    };
    Ok(Json(json!({ "total": total, "groups": groups })))
}
