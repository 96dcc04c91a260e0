//! The signed-in user's notices: unread first, each marked read with a form, each linking to
//! its run. It runs the feed's own query (`runledger_projections::notifications::notice_page`)
//! for the signed-in token's user, so it shows exactly what `GET /v1/notifications` would: the
//! user's own notices, in its tenant.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use runledger_core::{Outcome, TenantId};
use runledger_projections::notifications::{NoticePageQuery, NoticeRow, notice_page};

use super::Nav;
use super::page_error::{PageError, PageForm};
use super::session::{CsrfForm, Viewer};
use super::view::TimeView;
use crate::error::ApiError;
use crate::notifications::{feed_owner, parse_notice_id, read_notice};
use crate::{ApiConfig, AppState};

/// How many notices the page shows in each of its lists.
const SHOWN: u32 = 100;

/// A notice as the page shows it.
#[derive(Debug)]
pub struct NoticeView {
    pub id: String,
    pub title: String,
    pub body: String,
    pub kind: String,
    pub outcome: String,
    /// The seed's display label of the outcome.
    pub outcome_label: String,
    pub view_url: String,
    pub created: TimeView,
    pub read: bool,
}

impl NoticeView {
    /// The notice, with its link built by `config` for `tenant`'s feed.
    fn new(config: &ApiConfig, tenant: TenantId, notice: NoticeRow) -> Self {
        Self {
            view_url: config.notice_view_url(tenant, &notice),
            id: notice.id.to_string(),
            title: notice.title,
            body: notice.body,
            kind: notice.kind,
            outcome_label: notice.outcome.parse::<Outcome>().map_or_else(
                |_| notice.outcome.clone(),
                |outcome| outcome.label().to_owned(),
            ),
            outcome: notice.outcome,
            created: TimeView::new(notice.created_at),
            read: notice.read_at.is_some(),
        }
    }
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    nav: Option<Nav>,
    /// False for a token not bound to a user: it has no feed.
    has_feed: bool,
    csrf: String,
    unread: Vec<NoticeView>,
    read: Vec<NoticeView>,
}

/// `GET /ui/notifications`.
pub async fn notifications_page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let nav = Some(viewer.nav(viewer.caller.tenant_id.get()));
    let Some(user) = viewer.caller.user_id else {
        let page = NotificationsPage {
            nav,
            has_feed: false,
            csrf: viewer.csrf.clone(),
            unread: Vec::new(),
            read: Vec::new(),
        };
        return Ok(Html(page.render()?).into_response());
    };
    let list = async |unread_only| {
        let query = NoticePageQuery {
            unread_only,
            size: SHOWN,
            after: None,
        };
        notice_page(&state.pool, viewer.caller.tenant_id, user, &query)
            .await
            .map_err(ApiError::from)
    };
    let tenant = viewer.caller.tenant_id;
    let view = |notice| NoticeView::new(&state.config, tenant, notice);
    let unread = list(true).await?.notices;
    let read = list(false)
        .await?
        .notices
        .into_iter()
        .filter(|notice| notice.read_at.is_some())
        .map(view)
        .collect();
    let page = NotificationsPage {
        nav,
        has_feed: true,
        csrf: viewer.csrf.clone(),
        unread: unread.into_iter().map(view).collect(),
        read,
    };
    Ok(Html(page.render()?).into_response())
}

/// `POST /ui/notifications/{id}/read`, then back to the list.
pub async fn mark_read(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    viewer.check_form(&form)?;
    let user = feed_owner(&viewer.caller)?;
    let id = parse_notice_id(&id)?;
    read_notice(&state, &viewer.caller, user, id).await?;
    Ok(Redirect::to("/ui/notifications").into_response())
}
