//! The notification feed's queries, over `public.notifications`: a user's own notices, newest
//! first, in keyset pages; and marking one read (the read state is kept outside the feed, in
//! `public.notification_reads`, so it survives rebuilds).

use chrono::{DateTime, Utc};
use runledger_core::{TenantId, UserId};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::keyset::{Direction, cut_page, push_page_limit, push_past_page};

const NOTICE_COLUMNS: &str =
    "id, tenant_id, user_id, run_id, kind, title, body, outcome, created_at, position, read_at";

/// A notice, as `public.notifications` shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NoticeRow {
    /// Deterministic: the same run and kind give the same id ([`notice_id`](super::notice_id)).
    pub id: Uuid,
    /// The tenant.
    pub tenant_id: i64,
    /// The user notified.
    pub user_id: i64,
    /// The run.
    pub run_id: Uuid,
    /// `queued` or `completed`.
    pub kind: String,
    /// A short line for people.
    pub title: String,
    /// A sentence for people.
    pub body: String,
    /// The run's outcome when the notice was made.
    pub outcome: String,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
    /// The log position of the event.
    pub position: i64,
    /// When the user read it, if they did.
    pub read_at: Option<DateTime<Utc>>,
}

/// Where a page of notices ended: the last notice's time and id (the tie-breaker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticePosition {
    /// The last notice's `created_at`.
    pub created_at: DateTime<Utc>,
    /// The last notice's id.
    pub id: Uuid,
}

/// One page of a user's notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticePageQuery {
    /// Only notices not read yet.
    pub unread_only: bool,
    /// How many at most (at least 1).
    pub size: u32,
    /// The notices after this position (none: the first page).
    pub after: Option<NoticePosition>,
}

/// A page of notices, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticePage {
    /// The notices.
    pub notices: Vec<NoticeRow>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<NoticePosition>,
}

/// One page of `user`'s own notices in `tenant`, newest first.
///
/// # Errors
/// The database's.
pub async fn notice_page(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
    page: &NoticePageQuery,
) -> Result<NoticePage, sqlx::Error> {
    let mut query: QueryBuilder<'_, Postgres> = QueryBuilder::new(format!(
        "SELECT {NOTICE_COLUMNS} FROM notifications WHERE tenant_id = "
    ));
    query
        .push_bind(tenant.get())
        .push(" AND user_id = ")
        .push_bind(user.get());
    if page.unread_only {
        query.push(" AND read_at IS NULL");
    }
    if let Some(after) = &page.after {
        query.push(" AND ");
        push_past_page(
            &mut query,
            "created_at",
            Direction::Descending,
            after.created_at,
            after.id,
        );
    }
    query.push(" ORDER BY created_at DESC, id DESC");
    push_page_limit(&mut query, page.size);
    let notices: Vec<NoticeRow> = query.build_query_as().fetch_all(pool).await?;
    let (notices, next) = cut_page(notices, page.size, |last| NoticePosition {
        created_at: last.created_at,
        id: last.id,
    });
    Ok(NoticePage { notices, next })
}

/// Marks `user`'s own notice `id` in `tenant` read (again: no change) and returns it; another
/// user's or tenant's notice is `None`, like a missing one, and is left as it is.
///
/// # Errors
/// The database's.
pub async fn mark_read(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
    id: Uuid,
) -> Result<Option<NoticeRow>, sqlx::Error> {
    let owned: Option<(i64, i64)> =
        sqlx::query_as("SELECT tenant_id, user_id FROM notifications WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    if owned != Some((tenant.get(), user.get())) {
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO notification_reads (notification_id, user_id, tenant_id, read_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (notification_id) DO NOTHING",
    )
    .bind(id)
    .bind(user.get())
    .bind(tenant.get())
    .execute(pool)
    .await?;
    sqlx::query_as(&format!(
        "SELECT {NOTICE_COLUMNS} FROM notifications WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// How many of `user`'s own notices in `tenant` are not read yet (the navigation's badge).
///
/// # Errors
/// The database's.
pub async fn unread_count(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM notifications WHERE tenant_id = $1 AND user_id = $2 AND read_at IS NULL",
    )
    .bind(tenant.get())
    .bind(user.get())
    .fetch_one(pool)
    .await
}

/// Marks every notice of `user` in `tenant` read, as one statement; answers how many were
/// unread. Notices the feed shows later (a run completing meanwhile) stay unread.
///
/// # Errors
/// The database's.
pub async fn mark_all_read(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO notification_reads (notification_id, user_id, tenant_id, read_at)
         SELECT id, user_id, tenant_id, now() FROM notifications
         WHERE tenant_id = $1 AND user_id = $2 AND read_at IS NULL
         ON CONFLICT (notification_id) DO NOTHING",
    )
    .bind(tenant.get())
    .bind(user.get())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
