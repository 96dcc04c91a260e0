//! The signed-in user's notices, newest first, grouped by run (a run's queued and completed
//! notices together), each marked read with a small form or all at once, each linking to its
//! run. It runs the feed's own query (`runledger_projections::notifications::notice_page`)
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
use super::times::TimeView;
use crate::error::ApiError;
use crate::notifications::{feed_owner, parse_notice_id, read_notice};
use crate::{ApiConfig, AppState};

/// How many notices the page shows.
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
    /// The view of `notice`, for a page rendered at `now`.
    /// The view of `notice` of `tenant`'s feed, for a page rendered at `now`, its link built
    /// by `config` (this server's public URL).
    fn new(
        config: &ApiConfig,
        tenant: TenantId,
        notice: NoticeRow,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
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
            created: TimeView::new(notice.created_at, now),
            read: notice.read_at.is_some(),
        }
    }
}

/// A run's notices together (queued, then completed), newest run first.
#[derive(Debug)]
pub struct NoticeGroup {
    pub run_id: String,
    pub view_url: String,
    /// The newest notice's title: what the group is about now.
    pub title: String,
    pub unread: bool,
    /// Newest first.
    pub notices: Vec<NoticeView>,
}

/// Groups `notices` of `tenant`'s feed (newest first) by run, keeping the order of each run's
/// newest notice.
fn grouped(
    config: &ApiConfig,
    tenant: TenantId,
    notices: Vec<NoticeRow>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<NoticeGroup> {
    let mut groups: Vec<NoticeGroup> = Vec::new();
    for notice in notices {
        let run_id = notice.run_id.to_string();
        let view = NoticeView::new(config, tenant, notice, now);
        match groups.iter_mut().find(|group| group.run_id == run_id) {
            Some(group) => {
                group.unread |= !view.read;
                group.notices.push(view);
            }
            None => groups.push(NoticeGroup {
                run_id,
                view_url: view.view_url.clone(),
                title: view.title.clone(),
                unread: !view.read,
                notices: vec![view],
            }),
        }
    }
    groups
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    nav: Option<Nav>,
    /// False for a token not bound to a user: it has no feed.
    has_feed: bool,
    csrf: String,
    groups: Vec<NoticeGroup>,
    /// Every unread notice of the user (the navigation's count), not only those shown.
    unread_count: i64,
}

/// `GET /ui/notifications`.
pub async fn notifications_page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let nav = Some(Nav::of(&state, &viewer, viewer.caller.tenant_id.get()).await);
    let Some(user) = viewer.caller.user_id else {
        let page = NotificationsPage {
            nav,
            has_feed: false,
            csrf: viewer.csrf.clone(),
            groups: Vec::new(),
            unread_count: 0,
        };
        return Ok(Html(page.render()?).into_response());
    };
    let query = NoticePageQuery {
        unread_only: false,
        size: SHOWN,
        after: None,
    };
    let notices = notice_page(&state.pool, viewer.caller.tenant_id, user, &query)
        .await
        .map_err(ApiError::from)?
        .notices;
    let shown_unread = notices.iter().filter(|n| n.read_at.is_none()).count();
    let unread_count = nav
        .as_ref()
        .and_then(|nav| nav.unread_notices)
        .unwrap_or_else(|| i64::try_from(shown_unread).unwrap_or(i64::MAX));
    let page = NotificationsPage {
        nav,
        has_feed: true,
        csrf: viewer.csrf.clone(),
        groups: grouped(
            &state.config,
            viewer.caller.tenant_id,
            notices,
            state.clock.now(),
        ),
        unread_count,
    };
    Ok(Html(page.render()?).into_response())
}

/// `POST /ui/notifications/read-all`: every notice of the user read, then back to the list.
pub async fn mark_all_read(
    State(state): State<AppState>,
    viewer: Viewer,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    viewer.check_form(&form)?;
    let user = feed_owner(&viewer.caller)?;
    runledger_projections::notifications::mark_all_read(&state.pool, viewer.caller.tenant_id, user)
        .await
        .map_err(ApiError::from)?;
    Ok(Redirect::to("/ui/notifications").into_response())
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
