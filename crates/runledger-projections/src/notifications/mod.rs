//! The notification feed (`projections/notifications/`): a notice to the initiating user when a
//! run is queued and when it completes (saying so when it timed out or was cancelled). System
//! runs notify no one.
//!
//! A notice's id is a UUIDv5 of the run id and the notice kind, and notices are inserted with
//! `ON CONFLICT DO NOTHING`: applying an event again, or rebuilding the whole feed, recreates the
//! same notices and never a second one, and read state (kept by id in
//! `public.notification_reads`, outside the feed) still applies after a rebuild.
//!
//! A notice stores no link: its reader builds the "View run" link from the tenant and the run,
//! under its own public URL, so no setting of a process enters the feed (docs/adr/0025).
//!
//! # Layout
//! - this file: the projection (its definition and apply code).
//! - [`query`]: the feed's queries: a user's notices in keyset pages, marking one read.

use chrono::{DateTime, Utc};
use runledger_core::{CompletionReason, Outcome, RunEvent, RunSnapshot, RunType};
use runledger_store::EventReader;
use runledger_store::command::fold_until;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{ApplyError, ProjectionError};
use crate::projection::{ApplyTx, ProjectedEvent, Projection, PublicView};

pub mod query;

pub use query::{
    NoticePage, NoticePageQuery, NoticePosition, NoticeRow, mark_all_read, mark_read, notice_page,
    unread_count,
};

/// The projection's stored name.
pub const NOTIFICATIONS: &str = "notifications";

const VIEWS: &[PublicView] = &[PublicView {
    name: "notifications",
    select: "SELECT n.id, n.tenant_id, n.user_id, n.run_id, n.kind, n.title, n.body, n.outcome, \
                    n.created_at, n.position, r.read_at \
             FROM {schema}.notifications n \
             LEFT JOIN public.notification_reads r ON r.notification_id = n.id",
}];

/// Why a notice was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// The run was queued.
    Queued,
    /// The run completed, with any outcome.
    Completed,
}

impl NoticeKind {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Queued => "queued",
            NoticeKind::Completed => "completed",
        }
    }
}

/// The id of a run's notice of `kind`: the same run and kind always give the same id.
pub fn notice_id(run: Uuid, kind: NoticeKind) -> Uuid {
    Uuid::new_v5(&run, kind.as_str().as_bytes())
}

/// The notification feed.
#[derive(Debug, Clone)]
pub struct Notifications {
    reader: EventReader,
}

impl Notifications {
    /// The version of the apply code; bump it when the notices it writes change. (3: notices
    /// no longer store a link.)
    pub const CODE_VERSION: &'static str = "3";

    /// The feed. A completed notice folds the run's stream from the log (read through `pool`),
    /// so it reads the same state `evolve` gives everywhere else.
    pub fn new(pool: PgPool) -> Self {
        Self {
            reader: EventReader::new(pool),
        }
    }

    /// The notice a completed run sends, if a user started it.
    async fn completed_notice(
        &self,
        projected: &ProjectedEvent,
    ) -> Result<Option<Notice>, ApplyError> {
        let recorded = &projected.recorded;
        let stream = self
            .reader
            .read_stream(recorded.tenant_id, recorded.run_id)
            .await
            .map_err(ProjectionError::from)?;
        let run = fold_until(&stream, recorded.version)
            .map_err(|e| ApplyError::Poison(format!("the run's stream does not fold: {e}")))?;
        let Some(run) = run.snapshot() else {
            return Ok(None);
        };
        Ok(run.initiator.user_id.map(|user| Notice {
            id: notice_id(run.id.as_uuid(), NoticeKind::Completed),
            tenant_id: run.tenant_id.get(),
            user_id: user.get(),
            run_id: run.id.as_uuid(),
            kind: NoticeKind::Completed,
            title: completed_title(run),
            body: completed_body(run),
            outcome: run.outcome,
            created_at: projected.event.occurred_at(),
            position: recorded.position,
        }))
    }
}

/// One notice to insert.
struct Notice {
    id: Uuid,
    tenant_id: i64,
    user_id: i64,
    run_id: Uuid,
    kind: NoticeKind,
    title: String,
    body: String,
    outcome: Outcome,
    created_at: DateTime<Utc>,
    position: i64,
}

/// `Inventory sync queued`.
fn queued_title(run_type: &RunType) -> String {
    format!("{} queued", run_type.display_name())
}

/// `Inventory sync completed`, `… partially succeeded`, `… failed`; `… timed out` and
/// `… cancelled` when that is why it ended.
fn completed_title(run: &RunSnapshot) -> String {
    let verb = match (&run.completion, run.outcome) {
        (Some(CompletionReason::TimedOut { .. }), _) => "timed out",
        (Some(CompletionReason::Cancelled { .. }), _) => "cancelled",
        (_, Outcome::Succeeded | Outcome::Pending) => "completed",
        (_, other) => &other.label().to_lowercase(),
    };
    format!("{} {verb}", run.run_type.display_name())
}

/// `Inventory sync completed: 8 succeeded, 2 failed` (and `, 1 skipped` when any were), or the
/// first failure's message when nothing was counted; a time-out says which limit passed, and a
/// cancellation why it was asked for, with what was done before.
fn completed_body(run: &RunSnapshot) -> String {
    let name = run.run_type.display_name();
    let counts = run.summary_counts;
    let tally = || {
        let mut tally = format!("{} succeeded, {} failed", counts.success, counts.failed);
        if counts.skipped > 0 {
            tally.push_str(&format!(", {} skipped", counts.skipped));
        }
        tally
    };
    match &run.completion {
        Some(CompletionReason::TimedOut { time_out }) => {
            let code = time_out.limit.failure_code();
            let why = run
                .failure_summary
                .iter()
                .find(|failure| failure.code.as_str() == code)
                .map_or_else(
                    || time_out.limit.as_str().replace('_', " "),
                    |f| f.message.clone(),
                );
            return format!("{name} timed out: {why}");
        }
        Some(CompletionReason::Cancelled { cancellation }) => {
            let mut body = format!("{name} was cancelled");
            if let Some(reason) = &cancellation.reason {
                body.push_str(&format!(": {reason}"));
            }
            if counts.processed() > 0 {
                body.push_str(&format!(" ({} before it stopped)", tally()));
            }
            return body;
        }
        _ => {}
    }
    if counts.processed() == 0
        && let Some(failure) = run.failure_summary.first()
    {
        return format!(
            "{name} {}: {}",
            run.outcome.label().to_lowercase(),
            failure.message
        );
    }
    format!("{name} completed: {}", tally())
}

impl Projection for Notifications {
    fn name(&self) -> &'static str {
        NOTIFICATIONS
    }

    fn ddl(&self) -> &str {
        include_str!("../../../../projections/notifications/schema.sql")
    }

    fn code_version(&self) -> &'static str {
        Self::CODE_VERSION
    }

    fn views(&self) -> &'static [PublicView] {
        VIEWS
    }

    async fn apply(
        &self,
        events: &[ProjectedEvent],
        tx: &mut ApplyTx<'_>,
    ) -> Result<(), ApplyError> {
        let mut notices = Vec::new();
        for projected in events {
            match &projected.event {
                RunEvent::Queued(queued) => {
                    if let Some(user) = queued.initiator.user_id {
                        let run = queued.run_id.as_uuid();
                        notices.push(Notice {
                            id: notice_id(run, NoticeKind::Queued),
                            tenant_id: queued.tenant_id.get(),
                            user_id: user.get(),
                            run_id: run,
                            kind: NoticeKind::Queued,
                            title: queued_title(&queued.run_type),
                            body: format!(
                                "{} was queued and will start shortly",
                                queued.run_type.display_name()
                            ),
                            outcome: Outcome::Pending,
                            created_at: queued.queued_at,
                            position: projected.recorded.position,
                        });
                    }
                }
                RunEvent::Completed(_) => {
                    notices.extend(self.completed_notice(projected).await?);
                }
                RunEvent::Started(_) | RunEvent::Progressed(_) | RunEvent::CancelRequested(_) => {}
            }
        }
        tx.boundary("notifications.built")?;
        if notices.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO notifications (id, tenant_id, user_id, run_id, kind, title, body, outcome, \
                                        created_at, position) \
             SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::uuid[], $5::text[], \
                                  $6::text[], $7::text[], $8::text[], \
                                  $9::timestamptz[], $10::bigint[]) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(notices.iter().map(|n| n.id).collect::<Vec<_>>())
        .bind(notices.iter().map(|n| n.tenant_id).collect::<Vec<_>>())
        .bind(notices.iter().map(|n| n.user_id).collect::<Vec<_>>())
        .bind(notices.iter().map(|n| n.run_id).collect::<Vec<_>>())
        .bind(notices.iter().map(|n| n.kind.as_str()).collect::<Vec<_>>())
        .bind(notices.iter().map(|n| n.title.as_str()).collect::<Vec<_>>())
        .bind(notices.iter().map(|n| n.body.as_str()).collect::<Vec<_>>())
        .bind(notices.iter().map(|n| n.outcome.as_str()).collect::<Vec<_>>())
        .bind(notices.iter().map(|n| n.created_at).collect::<Vec<_>>())
        .bind(notices.iter().map(|n| n.position).collect::<Vec<_>>())
        .execute(tx.conn())
        .await?;
        tx.boundary("notifications.inserted")?;
        Ok(())
    }
}
