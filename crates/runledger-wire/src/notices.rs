//! The signed-in user's notification feed: its parameters, a notice, a page of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A notice, as `public.notifications` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NoticeQuery {
    /// Only notices not read yet.
    #[serde(default)]
    pub unread_only: bool,
    /// 1–200, default 50.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
}

/// A page of notices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NoticePage {
    /// Newest first.
    pub notifications: Vec<Notice>,
    /// Pass as `page_token` for the next page; absent on the last page.
    pub next_page_token: Option<String>,
}
