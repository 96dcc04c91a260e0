//! The sweeper's query: runs of any tenant whose limit has passed, as far as the read model and
//! the stored heartbeats tell.
//!
//! It only finds candidates. The decision is the core's, on a `TimeOut` the command path decides
//! against the run's events, so a candidate that is stale (the read model lags, a heartbeat or a
//! completion came in between) is refused there and changes nothing. Each branch reads one
//! partial index of the read model (`projections/operation_runs/schema.sql`) that holds only the
//! runs the limit binds in their status, from the earliest deadline on.

use chrono::{DateTime, Utc};
use runledger_core::{RunId, TenantId};
use sqlx::PgPool;
use uuid::Uuid;

/// A run whose limit has passed as of the query's time, as the read model shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverdueRun {
    /// Its tenant: the time-out is a command of that tenant's run.
    pub tenant_id: TenantId,
    /// The run.
    pub run_id: RunId,
    /// Its last heartbeat as stored outside the log, which the time-out records.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// When its first passed limit passed, as the read model and the heartbeat table tell.
    pub due_at: DateTime<Utc>,
}

/// A row of [`overdue_runs`]' query: tenant, run, stored heartbeat, when it fell due.
type OverdueRow = (i64, Uuid, Option<DateTime<Utc>>, DateTime<Utc>);

/// Up to `limit` runs, of every tenant, whose start deadline (queued), run deadline or heartbeat
/// timeout (running) has passed at `at`, the longest overdue first; each run once.
///
/// A run's heartbeat deadline is the later of the read model's (from its start or its latest
/// progress report) and its stored heartbeat's: a run heartbeating in time is read by the
/// heartbeat branch's index only once the log's deadline is behind it, and is then left out.
///
/// # Errors
/// The database's (or an undefined view when no projector has built the read model yet).
pub async fn overdue_runs(
    pool: &PgPool,
    at: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<OverdueRun>, sqlx::Error> {
    let rows: Vec<OverdueRow> = sqlx::query_as(
        "SELECT DISTINCT ON (due.id) due.tenant_id, due.id, due.heartbeat_at, due.due_at \
         FROM ( \
             (SELECT tenant_id, id, heartbeat_at, start_deadline_at AS due_at \
              FROM public.operation_runs \
              WHERE status = 'queued' AND start_deadline_at IS NOT NULL AND start_deadline_at <= $1 \
              ORDER BY start_deadline_at LIMIT $2) \
             UNION ALL \
             (SELECT tenant_id, id, heartbeat_at, run_deadline_at \
              FROM public.operation_runs \
              WHERE status = 'running' AND run_deadline_at IS NOT NULL AND run_deadline_at <= $1 \
              ORDER BY run_deadline_at LIMIT $2) \
             UNION ALL \
             (SELECT tenant_id, id, heartbeat_at, deadline_at FROM ( \
                  SELECT tenant_id, id, heartbeat_at, log_heartbeat_deadline_at, \
                         GREATEST(log_heartbeat_deadline_at, \
                                  heartbeat_at + heartbeat_timeout_seconds * interval '1 second') \
                             AS deadline_at \
                  FROM public.operation_runs \
                  WHERE status = 'running' AND log_heartbeat_deadline_at IS NOT NULL \
                    AND log_heartbeat_deadline_at <= $1) AS heartbeats \
              WHERE deadline_at <= $1 \
              ORDER BY log_heartbeat_deadline_at LIMIT $2) \
         ) AS due \
         ORDER BY due.id, due.due_at",
    )
    .bind(at)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    let mut overdue: Vec<OverdueRun> = rows
        .into_iter()
        .filter_map(|(tenant, run, heartbeat_at, due_at)| {
            Some(OverdueRun {
                // The read model only holds positive tenants (the log's check).
                tenant_id: TenantId::new(tenant).ok()?,
                run_id: run.into(),
                heartbeat_at,
                due_at,
            })
        })
        .collect();
    overdue.sort_by_key(|run| (run.due_at, run.run_id.as_uuid()));
    overdue.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(overdue)
}
