//! The signed-in user's notices: unread first, each marked read with a form, each linking to
//! its run. It reads the feed route's own query (`crate::notifications::notice_page`), so it
//! shows exactly what `GET /v1/notifications` would: the user's own notices, in its tenant.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use runledger_core::Outcome;

use super::Nav;
use super::page_error::{PageError, PageForm};
use super::session::{CsrfForm, Viewer};
use super::view::TimeView;
use crate::AppState;
use crate::error::ApiError;
use crate::notifications::{Notice, NoticeQuery, mark_notice_read, notice_page};

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

impl From<Notice> for NoticeView {
    fn from(notice: Notice) -> Self {
        Self {
            id: notice.id.to_string(),
            title: notice.title,
            body: notice.body,
            kind: notice.kind,
            outcome_label: notice.outcome.parse::<Outcome>().map_or_else(
                |_| notice.outcome.clone(),
                |outcome| outcome.label().to_owned(),
            ),
            outcome: notice.outcome,
            view_url: notice.view_url,
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
    if viewer.caller.user_id.is_none() {
        let page = NotificationsPage {
            nav,
            has_feed: false,
            csrf: viewer.csrf.clone(),
            unread: Vec::new(),
            read: Vec::new(),
        };
        return Ok(Html(page.render()?).into_response());
    }
    let list = async |unread_only| {
        let query = NoticeQuery {
            unread_only,
            page_size: Some(SHOWN),
            page_token: None,
        };
        notice_page(&state, &viewer.caller, &query).await
    };
    let unread = list(true).await?.notifications;
    let read = list(false)
        .await?
        .notifications
        .into_iter()
        .filter(|notice| notice.read_at.is_some())
        .map(NoticeView::from)
        .collect();
    let page = NotificationsPage {
        nav,
        has_feed: true,
        csrf: viewer.csrf.clone(),
        unread: unread.into_iter().map(NoticeView::from).collect(),
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
    let id = id
        .parse()
        .map_err(|_| ApiError::bad_field("id", "must be a UUID"))?;
    mark_notice_read(&state, &viewer.caller, id).await?;
    Ok(Redirect::to("/ui/notifications").into_response())
}
