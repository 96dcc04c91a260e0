//! The signed-in user's notices: `GET /v1/notifications` (newest first, cursor pages,
//! `unread_only`) and `POST /v1/notifications/{id}/read`. Only a token bound to a user has a
//! feed, and it sees only its own notices, in its own tenant.
//!
//! The routes parse the request into the feed's typed query
//! (`runledger_projections::notifications::query`) and render its rows.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use runledger_core::{TenantId, UserId};
use runledger_projections::notifications::{
    NoticePageQuery, NoticePosition, NoticeRow, mark_read as mark_notice_read, notice_page,
};
use runledger_wire::{Notice, NoticePage, NoticeQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Query;
use crate::page::PageToken;
use crate::{ApiConfig, AppState};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(mark_read))
}

/// A row of `tenant`'s feed as the API shows it, with its link under this process's public URL.
fn notice_of_row(config: &ApiConfig, tenant: TenantId, row: NoticeRow) -> Notice {
    let view_url = config.notice_view_url(tenant, &row);
    let NoticeRow {
        id,
        tenant_id,
        user_id,
        run_id,
        kind,
        title,
        body,
        outcome,
        created_at,
        position,
        read_at,
    } = row;
    Notice {
        id,
        tenant_id,
        user_id,
        run_id,
        kind,
        title,
        body,
        outcome,
        view_url,
        created_at,
        position,
        read_at,
    }
}

/// The user whose feed the caller reads: its own, if its token is bound to one.
pub(crate) fn feed_owner(caller: &Caller) -> Result<UserId, ApiError> {
    caller.user_id.ok_or(ApiError::Forbidden)
}

/// The caller of a feed route and the user whose feed it reads, checked before anything else
/// of the request is read.
pub(crate) struct Feed {
    caller: Caller,
    user: UserId,
}

impl FromRequestParts<AppState> for Feed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let user = feed_owner(&caller)?;
        Ok(Self { caller, user })
    }
}

/// The digest of a feed's page tokens: whose feed (tenant and user) and which list of it (all
/// notices, or the unread ones); another feed's token is refused.
fn feed_digest(tenant: TenantId, user: UserId, unread_only: bool) -> String {
    let list = if unread_only { "unread" } else { "all" };
    PageToken::digest(&(tenant.get(), user.get(), list))
}

/// The signed-in user's notices, newest first, in pages.
#[utoipa::path(get, path = "/v1/notifications", tag = "notifications",
    params(NoticeQuery),
    responses((status = 200, body = NoticePage, description = "A page of notices"), (status = 403, description = "The token is not bound to a user")),
    security(("bearer" = [])))]
pub(crate) async fn list_notifications(
    State(state): State<AppState>,
    Feed { caller, user }: Feed,
    Query(params): Query<NoticeQuery>,
) -> Result<Json<NoticePage>, ApiError> {
    let size = params.page_size.unwrap_or(50);
    if !(1..=200).contains(&size) {
        return Err(ApiError::bad_field(
            "page_size",
            "must be between 1 and 200",
        ));
    }
    let digest = feed_digest(caller.tenant_id, user, params.unread_only);
    let after = params
        .page_token
        .as_deref()
        .map(|t| PageToken::decode(t, &digest))
        .transpose()?
        .map(|token| {
            Ok::<_, ApiError>(NoticePosition {
                created_at: token.t.ok_or_else(PageToken::not_of_this_list)?,
                id: token.id,
            })
        })
        .transpose()?;
    let query = NoticePageQuery {
        unread_only: params.unread_only,
        size,
        after,
    };
    let page = notice_page(&state.pool, caller.tenant_id, user, &query).await?;
    let next_page_token = page.next.map(|next| {
        PageToken {
            f: digest,
            t: Some(next.created_at),
            id: next.id,
        }
        .encode()
    });
    Ok(Json(NoticePage {
        notifications: page
            .notices
            .into_iter()
            .map(|row| notice_of_row(&state.config, caller.tenant_id, row))
            .collect(),
        next_page_token,
    }))
}

/// Mark one of the user's notices read.
#[utoipa::path(post, path = "/v1/notifications/{id}/read", tag = "notifications",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Notice, description = "The notice, read"), (status = 403, description = "The token is not bound to a user")),
    security(("bearer" = [])))]
pub(crate) async fn mark_read(
    State(state): State<AppState>,
    Feed { caller, user }: Feed,
    Path(id): Path<String>,
) -> Result<Json<Notice>, ApiError> {
    let id = parse_notice_id(&id)?;
    Ok(Json(notice_of_row(
        &state.config,
        caller.tenant_id,
        read_notice(&state, &caller, user, id).await?,
    )))
}

/// A notice id of a path.
pub(crate) fn parse_notice_id(text: &str) -> Result<uuid::Uuid, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_field("id", "must be a UUID"))
}

/// Marks `user`'s own notice `id` read: the route's work, which the notifications page shares.
/// Another user's notice answers as a missing one.
pub(crate) async fn read_notice(
    state: &AppState,
    caller: &Caller,
    user: UserId,
    id: uuid::Uuid,
) -> Result<NoticeRow, ApiError> {
    mark_notice_read(&state.pool, caller.tenant_id, user, id)
        .await?
        .ok_or(ApiError::NotFound)
}
