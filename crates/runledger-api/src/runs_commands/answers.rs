//! The shapes of the command routes' answers and of the run JSON, for the OpenAPI document.
//!
//! The answers themselves are built from the domain's one JSON of a run (`run_json`); these
//! types only describe them. `tests/it/api/openapi.rs` checks that a run's JSON has exactly the
//! properties [`RunJson`] documents, so the two cannot drift.

use serde_json::Value;
use utoipa::ToSchema;

/// The answer of a command route.
#[derive(Debug, ToSchema)]
pub struct CommandAnswer {
    /// The run after the command (or as it stands, when the command changed nothing).
    pub run: RunJson,
    /// The log position of the command's event (of the run's latest event when it changed
    /// nothing; `null` for a deduplicated queue): pass it as `min_position` to a query to read
    /// your write.
    pub position: Option<i64>,
    /// Queue only: whether a new run was created (false: an active run of the same identity).
    pub created: Option<bool>,
    /// Progress only: whether the run was asked to cancel (its worker should stop and complete
    /// it `cancelled`).
    pub cancel_requested: Option<bool>,
}

/// The answer of a heartbeat.
#[derive(Debug, ToSchema)]
pub struct HeartbeatAnswer {
    /// The run, with the heartbeat in `last_heartbeat_at`.
    pub run: RunJson,
    /// Whether the run was asked to cancel: its worker should stop and complete it `cancelled`.
    pub cancel_requested: bool,
    /// The log position of the run's latest event (a heartbeat writes none).
    pub position: i64,
}

/// A run: the seed's OperationRun, its lifecycle, and the link to its page. Times are RFC 3339
/// in UTC, to the microsecond.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // A schema: the JSON is built from the domain's state, not from this type.
pub struct RunJson {
    /// The run id.
    #[schema(format = Uuid)]
    id: String,
    /// The owning tenant.
    tenant_id: i64,
    /// The initiating user; `null` for the system.
    user_id: Option<i64>,
    /// The initiator's name at queue time, or `System`.
    initiator_name: String,
    /// The run type, e.g. `inventory.sync`.
    #[schema(rename = "type")]
    run_type: String,
    /// `queued`, `running` or `completed`.
    status: String,
    /// `pending`, `succeeded`, `partially_succeeded`, `failed` or `cancelled`.
    outcome: String,
    /// The dedupe key: 64 hex digits.
    run_identity_hash: String,
    /// The identity inputs.
    identity: Value,
    /// `{total?, success, failed, skipped}`.
    summary_counts: Value,
    /// `[{code, message, count}]`; a time-out's code names the limit.
    failure_summary: Value,
    /// Run-specific metadata.
    context: Value,
    /// When it started.
    started_at: Option<String>,
    /// When it completed.
    completed_at: Option<String>,
    /// When it was queued.
    created_at: String,
    /// When its latest event happened.
    updated_at: String,
    /// The stream version: also the `ETag` and what `If-Match` takes.
    version: i64,
    /// Whether it completed.
    done: bool,
    /// The limits it runs under, as resolved when it was queued:
    /// `{start_deadline_seconds, run_deadline_seconds, heartbeat_timeout_seconds}`, each
    /// seconds or `null` for none.
    limits: Value,
    /// When its start deadline passes.
    start_deadline_at: Option<String>,
    /// When its run deadline passes (once started).
    run_deadline_at: Option<String>,
    /// When its heartbeat timeout passes: from its last heartbeat, or from its start until the
    /// first.
    heartbeat_deadline_at: Option<String>,
    /// The worker that started it, when the start named one.
    worker: Option<String>,
    /// Its latest progress report.
    last_progress_at: Option<String>,
    /// Its latest heartbeat: the later of the last heartbeat and the last progress report.
    last_heartbeat_at: Option<String>,
    /// Whether someone asked it to cancel.
    cancel_requested: bool,
    /// When.
    cancel_requested_at: Option<String>,
    /// Why, in the requester's words (sanitized).
    cancel_reason: Option<String>,
    /// Why it completed: `finished`, `dispatch_failed`, `timed_out` or `cancelled`.
    completion_reason: Option<String>,
    /// For a time-out, the limit that passed:
    /// `{limit, code, limit_seconds, passed_at, last_heartbeat_at}`.
    time_out: Option<Value>,
    /// The run's page.
    view_url: String,
}
