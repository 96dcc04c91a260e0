//! The OperationRun read model (`projections/operation_runs/`): one row per run, folded from
//! its events with the domain's `evolve`.
//!
//! A batch loads the rows of the runs it touches, turns each back into the domain's
//! [`RunSnapshot`], folds the batch's events into them in log order, and writes each changed run
//! once, with one multi-row upsert: a few statements per batch whatever its size.
//!
//! # Layout
//! - this file: the projection (its definition and apply code).
//! - [`row`]: [`OperationRunRow`], a row of the read model, and the run it holds.
//! - [`query`]: the read model's queries: typed filters, orders, keyset pages and counts.
//! - [`search`]: the search terms (run id prefix, `key=value`) and the indexes answering them.
//! - [`overdue`]: the sweeper's query: runs of any tenant whose limit has passed.
//! - [`changed`]: [`ChangedRuns`], a process's one read of each changed run for all its watchers.
//!
//! The lifecycle columns (limits, deadlines, worker, cancel request, completion reason) are
//! folded like the others; the last heartbeat is not an event, so the public view joins it in
//! from `public.run_heartbeats` and no projected column holds it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use runledger_core::{Limit, Run, RunSnapshot, UserId, evolve};
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApplyError;
use crate::projection::{ApplyTx, ProjectedEvent, Projection, PublicView};

/// The projection's stored name.
pub const OPERATION_RUNS: &str = "operation_runs";

/// The columns of the read model, in the order of [`OperationRunRow`] and the public view.
macro_rules! run_columns {
    () => {
        "id, tenant_id, user_id, initiator_name, type, status, outcome, run_identity_hash, \
         summary_counts, failure_summary, context, started_at, completed_at, created_at, \
         updated_at, identity, version, last_position, last_tx_id, last_event_at, \
         start_deadline_seconds, run_deadline_seconds, heartbeat_timeout_seconds, \
         start_deadline_at, run_deadline_at, log_heartbeat_deadline_at, worker, last_progress_at, \
         cancel_requested_at, cancel_reason, completion"
    };
}

pub mod changed;
pub mod overdue;
pub mod query;
pub mod row;
pub mod search;

pub use changed::ChangedRuns;
pub use overdue::{OverdueRun, overdue_runs};
pub use query::{
    CountGroup, RunCount, RunFilter, RunOrder, RunPage, RunPageQuery, RunPosition, RunQueryError,
    TypePrefix, count_runs, explain_count_runs, explain_run_page, find_run, run_if_listed,
    run_page, same_identity,
};
pub use row::OperationRunRow;
pub use search::{Attribute, InvalidAttribute, InvalidRunIdPrefix, RunIdPrefix};

/// The public view: the projected row, and the run's last heartbeat from the table beside the
/// log (heartbeats are not events, so no projected column holds them and a rebuild reproduces
/// every projected column exactly).
const VIEWS: &[PublicView] = &[PublicView {
    name: "operation_runs",
    select: concat!(
        "SELECT ",
        run_columns!(),
        ", (SELECT h.last_heartbeat_at FROM public.run_heartbeats h \
             WHERE h.tenant_id = r.tenant_id AND h.run_id = r.id) AS heartbeat_at \
         FROM {schema}.operation_runs r"
    ),
}];

/// The OperationRun read model.
#[derive(Debug, Clone)]
pub struct OperationRuns {
    ddl: String,
}

impl OperationRuns {
    /// The version of the apply code; bump it when the rows it writes change.
    pub const CODE_VERSION: &'static str = "2";

    /// The read model with its DDL from `projections/operation_runs/schema.sql`.
    pub fn new() -> Self {
        Self::with_ddl(include_str!(
            "../../../../projections/operation_runs/schema.sql"
        ))
    }

    /// The read model with other DDL (a test's changed schema); the tables and columns the apply
    /// code writes must exist in it.
    pub fn with_ddl(ddl: &str) -> Self {
        Self {
            ddl: ddl.to_owned(),
        }
    }
}

impl Default for OperationRuns {
    fn default() -> Self {
        Self::new()
    }
}

impl Projection for OperationRuns {
    fn name(&self) -> &'static str {
        OPERATION_RUNS
    }

    fn ddl(&self) -> &str {
        &self.ddl
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
        let mut touched: Vec<Uuid> = events.iter().map(|e| e.recorded.run_id.as_uuid()).collect();
        touched.sort_unstable();
        touched.dedup();
        let rows: Vec<OperationRunRow> = sqlx::query_as(concat!(
            "SELECT ",
            run_columns!(),
            " FROM operation_runs WHERE id = ANY($1)"
        ))
        .bind(&touched)
        .fetch_all(tx.conn())
        .await?;
        tx.boundary("operation_runs.loaded")?;

        let mut folded: HashMap<Uuid, Folded> = HashMap::with_capacity(touched.len());
        for row in rows {
            let run = Run::Exists(Box::new(row.to_snapshot().map_err(ApplyError::Poison)?));
            folded.insert(row.id, Folded { run, last: None });
        }
        for (index, projected) in events.iter().enumerate() {
            let recorded = &projected.recorded;
            let entry = folded
                .entry(recorded.run_id.as_uuid())
                .or_insert_with(|| Folded {
                    run: Run::Unqueued,
                    last: None,
                });
            if recorded.version <= entry.run.version() {
                return Err(ApplyError::Poison(format!(
                    "event version {} of run {} is already folded into the read model (version {})",
                    recorded.version,
                    recorded.run_id,
                    entry.run.version()
                )));
            }
            let run = std::mem::take(&mut entry.run);
            entry.run = evolve(run, &projected.event);
            entry.last = Some(index);
        }

        // Written in the order of each run's last event: a run that completed (freeing its
        // identity in the unique index of active runs) is written before a run queued later
        // with the same identity.
        let mut changed: Vec<(usize, &RunSnapshot)> = folded
            .values()
            .filter_map(|f| Some((f.last?, f.run.snapshot()?)))
            .collect();
        changed.sort_unstable_by_key(|(index, _)| *index);
        let mut columns = RunColumns::with_capacity(changed.len());
        for (index, run) in changed {
            columns.push(run, &events[index]);
        }
        columns.upsert(tx).await?;
        tx.boundary("operation_runs.upserted")?;
        Ok(())
    }
}

/// A run's state during a batch, and the index of its last event in the batch.
struct Folded {
    run: Run,
    last: Option<usize>,
}

/// The rows of an upsert, as Postgres arrays for one `unnest`.
#[derive(Default)]
struct RunColumns {
    id: Vec<Uuid>,
    tenant_id: Vec<i64>,
    user_id: Vec<Option<i64>>,
    initiator_name: Vec<String>,
    run_type: Vec<String>,
    status: Vec<&'static str>,
    outcome: Vec<&'static str>,
    run_identity_hash: Vec<String>,
    summary_counts: Vec<Value>,
    failure_summary: Vec<Value>,
    context: Vec<Value>,
    started_at: Vec<Option<DateTime<Utc>>>,
    completed_at: Vec<Option<DateTime<Utc>>>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    identity: Vec<Value>,
    version: Vec<i64>,
    last_position: Vec<i64>,
    last_tx_id: Vec<i64>,
    last_event_at: Vec<DateTime<Utc>>,
    start_deadline_seconds: Vec<Option<i32>>,
    run_deadline_seconds: Vec<Option<i32>>,
    heartbeat_timeout_seconds: Vec<Option<i32>>,
    start_deadline_at: Vec<Option<DateTime<Utc>>>,
    run_deadline_at: Vec<Option<DateTime<Utc>>>,
    log_heartbeat_deadline_at: Vec<Option<DateTime<Utc>>>,
    worker: Vec<Option<String>>,
    last_progress_at: Vec<Option<DateTime<Utc>>>,
    cancel_requested_at: Vec<Option<DateTime<Utc>>>,
    cancel_reason: Vec<Option<String>>,
    completion: Vec<Option<Value>>,
}

impl RunColumns {
    fn with_capacity(capacity: usize) -> Self {
        let mut columns = Self::default();
        columns.id.reserve(capacity);
        columns
    }

    fn push(&mut self, run: &RunSnapshot, last: &ProjectedEvent) {
        let json = |value: Result<Value, serde_json::Error>| {
            // Counts and failure entries are plain data: they always serialize.
            value.unwrap_or_else(|e| unreachable!("read model values serialize: {e}"))
        };
        self.id.push(run.id.as_uuid());
        self.tenant_id.push(run.tenant_id.get());
        self.user_id.push(run.initiator.user_id.map(UserId::get));
        self.initiator_name.push(run.initiator.name.clone());
        self.run_type.push(run.run_type.as_str().to_owned());
        self.status.push(run.status.as_str());
        self.outcome.push(run.outcome.as_str());
        self.run_identity_hash.push(run.run_identity_hash.to_hex());
        self.summary_counts
            .push(json(serde_json::to_value(run.summary_counts)));
        self.failure_summary
            .push(json(serde_json::to_value(&run.failure_summary)));
        self.context.push(run.context.clone());
        self.started_at.push(run.started_at);
        self.completed_at.push(run.completed_at);
        self.created_at.push(run.created_at);
        self.updated_at.push(run.updated_at);
        self.identity.push(run.identity.clone());
        self.version
            .push(i64::try_from(run.version).unwrap_or(i64::MAX));
        self.last_position.push(last.recorded.position);
        self.last_tx_id
            .push(i64::try_from(last.recorded.tx_id).unwrap_or(i64::MAX));
        self.last_event_at.push(last.recorded.recorded_at);
        // Limits are at most thirty days of seconds: they fit an integer column.
        let seconds = |limit: Limit| {
            run.limits
                .get(limit)
                .map(|s| i32::try_from(s.get()).unwrap_or(i32::MAX))
        };
        self.start_deadline_seconds
            .push(seconds(Limit::StartDeadline));
        self.run_deadline_seconds.push(seconds(Limit::RunDeadline));
        self.heartbeat_timeout_seconds
            .push(seconds(Limit::HeartbeatTimeout));
        self.start_deadline_at.push(run.start_deadline_at());
        self.run_deadline_at.push(run.run_deadline_at());
        self.log_heartbeat_deadline_at
            .push(run.heartbeat_deadline_at(None));
        self.worker
            .push(run.worker.as_ref().map(|w| w.as_str().to_owned()));
        self.last_progress_at.push(run.last_progress_at);
        let request = run.cancel_requested.as_ref();
        self.cancel_requested_at
            .push(request.map(|r| r.requested_at));
        self.cancel_reason
            .push(request.and_then(|r| r.reason.clone()));
        self.completion.push(
            run.completion
                .as_ref()
                .map(|reason| json(serde_json::to_value(reason))),
        );
    }

    async fn upsert(&self, tx: &mut ApplyTx<'_>) -> Result<(), ApplyError> {
        if self.id.is_empty() {
            return Ok(());
        }
        sqlx::query(concat!(
            "INSERT INTO operation_runs (",
            run_columns!(),
            ") SELECT ",
            run_columns!(),
            " FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
                      $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::jsonb[], $11::jsonb[], \
                      $12::timestamptz[], $13::timestamptz[], $14::timestamptz[], \
                      $15::timestamptz[], $16::jsonb[], $17::bigint[], $18::bigint[], \
                      $19::bigint[], $20::timestamptz[], $21::integer[], $22::integer[], \
                      $23::integer[], $24::timestamptz[], $25::timestamptz[], \
                      $26::timestamptz[], $27::text[], $28::timestamptz[], $29::timestamptz[], \
                      $30::text[], $31::jsonb[]) WITH ORDINALITY \
                 AS r(",
            run_columns!(),
            ", ord) ORDER BY ord \
             ON CONFLICT (id) DO UPDATE SET \
                 tenant_id = EXCLUDED.tenant_id, user_id = EXCLUDED.user_id, \
                 initiator_name = EXCLUDED.initiator_name, type = EXCLUDED.type, \
                 status = EXCLUDED.status, outcome = EXCLUDED.outcome, \
                 run_identity_hash = EXCLUDED.run_identity_hash, \
                 summary_counts = EXCLUDED.summary_counts, \
                 failure_summary = EXCLUDED.failure_summary, context = EXCLUDED.context, \
                 started_at = EXCLUDED.started_at, completed_at = EXCLUDED.completed_at, \
                 created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, \
                 identity = EXCLUDED.identity, version = EXCLUDED.version, \
                 last_position = EXCLUDED.last_position, last_tx_id = EXCLUDED.last_tx_id, \
                 last_event_at = EXCLUDED.last_event_at, \
                 start_deadline_seconds = EXCLUDED.start_deadline_seconds, \
                 run_deadline_seconds = EXCLUDED.run_deadline_seconds, \
                 heartbeat_timeout_seconds = EXCLUDED.heartbeat_timeout_seconds, \
                 start_deadline_at = EXCLUDED.start_deadline_at, \
                 run_deadline_at = EXCLUDED.run_deadline_at, \
                 log_heartbeat_deadline_at = EXCLUDED.log_heartbeat_deadline_at, \
                 worker = EXCLUDED.worker, last_progress_at = EXCLUDED.last_progress_at, \
                 cancel_requested_at = EXCLUDED.cancel_requested_at, \
                 cancel_reason = EXCLUDED.cancel_reason, completion = EXCLUDED.completion"
        ))
        .bind(&self.id)
        .bind(&self.tenant_id)
        .bind(&self.user_id)
        .bind(&self.initiator_name)
        .bind(&self.run_type)
        .bind(&self.status)
        .bind(&self.outcome)
        .bind(&self.run_identity_hash)
        .bind(&self.summary_counts)
        .bind(&self.failure_summary)
        .bind(&self.context)
        .bind(&self.started_at)
        .bind(&self.completed_at)
        .bind(&self.created_at)
        .bind(&self.updated_at)
        .bind(&self.identity)
        .bind(&self.version)
        .bind(&self.last_position)
        .bind(&self.last_tx_id)
        .bind(&self.last_event_at)
        .bind(&self.start_deadline_seconds)
        .bind(&self.run_deadline_seconds)
        .bind(&self.heartbeat_timeout_seconds)
        .bind(&self.start_deadline_at)
        .bind(&self.run_deadline_at)
        .bind(&self.log_heartbeat_deadline_at)
        .bind(&self.worker)
        .bind(&self.last_progress_at)
        .bind(&self.cancel_requested_at)
        .bind(&self.cancel_reason)
        .bind(&self.completion)
        .execute(tx.conn())
        .await?;
        Ok(())
    }
}
