//! The signed-in user's notices: `GET /v1/notifications` (newest first, cursor pages,
//! `unread_only`) and `POST /v1/notifications/{id}/read`. Only a token bound to a user has a
//! feed, and it sees only its own notices, in its own tenant.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use runledger_core::UserId;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Query;
use crate::page::{Direction, PageToken, push_past_page};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/notifications", get(list_notifications))
        .route("/v1/notifications/{id}/read", post(mark_read))
}

const NOTICE_COLUMNS: &str = "id, tenant_id, user_id, run_id, kind, title, body, outcome, view_url, created_at, position, read_at";

/// A notice, as `public.notifications` shows it.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Notice {
    /// Deterministic: the same run and kind give the same id.
    pub id: uuid::Uuid,
    /// The tenant.
    pub tenant_id: i64,
    /// The user notified.
    pub user_id: i64,
    /// The run.
    pub run_id: uuid::Uuid,
    /// `queued` or `completed`.
    pub kind: String,
    /// A short line for people.
    pub title: String,
    /// A sentence for people.
    pub body: String,
    /// The run's outcome when the notice was made.
    pub outcome: String,
    /// The run's page.
    pub view_url: String,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
    /// The log position of the event.
    pub position: i64,
    /// When the user read it, if they did.
    pub read_at: Option<DateTime<Utc>>,
}

/// `GET /v1/notifications` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NoticeQuery {
    /// Only notices not read yet.
    #[serde(default)]
    pub unread_only: bool,
    /// 1–200, default 50.
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// A page of notices.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoticePage {
    /// Newest first.
    pub notifications: Vec<Notice>,
    /// Pass as `page_token` for the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

fn feed_owner(caller: &Caller) -> Result<UserId, ApiError> {
    caller.user_id.ok_or(ApiError::Forbidden)
}

#[utoipa::path(get, path = "/v1/notifications", tag = "notifications",
    params(NoticeQuery),
    responses((status = 200, body = NoticePage), (status = 400), (status = 401), (status = 403, description = "The token is not bound to a user")),
    security(("bearer" = [])))]
pub(crate) async fn list_notifications(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<NoticeQuery>,
) -> Result<Json<NoticePage>, ApiError> {
    Ok(Json(notice_page(&state, &caller, &params).await?))
}

/// A page of the caller's own notices, newest first: the feed route's query, which the
/// notifications page shares.
pub(crate) async fn notice_page(
    state: &AppState,
    caller: &Caller,
    params: &NoticeQuery,
) -> Result<NoticePage, ApiError> {
    let user = feed_owner(caller)?;
    let page_size = params.page_size.unwrap_or(50);
    if !(1..=200).contains(&page_size) {
        return Err(ApiError::bad_field(
            "page_size",
            "must be between 1 and 200",
        ));
    }
    let digest = if params.unread_only { "unread" } else { "all" };
    let after = params
        .page_token
        .as_deref()
        .map(|t| PageToken::decode(t, digest))
        .transpose()?;
    let mut query: QueryBuilder<'_, Postgres> = QueryBuilder::new(format!(
        "SELECT {NOTICE_COLUMNS} FROM notifications WHERE tenant_id = "
    ));
    query
        .push_bind(caller.tenant_id.get())
        .push(" AND user_id = ")
        .push_bind(user.get());
    if params.unread_only {
        query.push(" AND read_at IS NULL");
    }
    if let Some(after) = &after {
        let t = after
            .t
            .ok_or_else(|| ApiError::bad_field("page_token", "is not a page token of this list"))?;
        query.push(" AND ");
        push_past_page(&mut query, "created_at", Direction::Descending, t, after.id);
    }
    query
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(page_size) + 1);
    let mut notifications: Vec<Notice> = query.build_query_as().fetch_all(&state.pool).await?;
    let more = notifications.len() > page_size as usize;
    notifications.truncate(page_size as usize);
    let next_page_token = notifications.last().filter(|_| more).map(|last| {
        PageToken {
            f: digest.to_owned(),
            t: Some(last.created_at),
            id: last.id,
        }
        .encode()
    });
    Ok(NoticePage {
        notifications,
        next_page_token,
    })
}

#[utoipa::path(post, path = "/v1/notifications/{id}/read", tag = "notifications",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Notice), (status = 400), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Notice>, ApiError> {
    let id: uuid::Uuid = id
        .parse()
        .map_err(|_| ApiError::bad_field("id", "must be a UUID"))?;
    Ok(Json(mark_notice_read(&state, &caller, id).await?))
}

/// Marks the caller's own notice `id` read (again: no change) and returns it; another user's
/// notice answers as a missing one.
pub(crate) async fn mark_notice_read(
    state: &AppState,
    caller: &Caller,
    id: uuid::Uuid,
) -> Result<Notice, ApiError> {
    let user = feed_owner(caller)?;
    let owned: Option<(i64, i64)> =
        sqlx::query_as("SELECT tenant_id, user_id FROM notifications WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.pool)
            .await?;
    if owned != Some((caller.tenant_id.get(), user.get())) {
        return Err(ApiError::NotFound);
    }
    sqlx::query(
        "INSERT INTO notification_reads (notification_id, user_id, tenant_id, read_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (notification_id) DO NOTHING",
    )
    .bind(id)
    .bind(user.get())
    .bind(caller.tenant_id.get())
    .execute(&state.pool)
    .await?;
    let notice: Notice = sqlx::query_as(&format!(
        "SELECT {NOTICE_COLUMNS} FROM notifications WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(&state.pool)
    .await?;
    Ok(notice)
}
