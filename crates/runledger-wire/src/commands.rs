//! The command routes' request bodies, and the answer every command route gives.
//!
//! Bodies refuse unknown fields, so a misspelled field is a 400 rather than silently ignored.
//! Each field the server accepts is here; what a value must be (a run type's shape, a failure
//! code's, counts within the total) the server checks when it parses a body into domain values.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::run::OperationRun;

/// `POST /v1/tenants/{tenant_id}/runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueRunBody {
    /// The run type, e.g. `inventory.sync`.
    #[serde(rename = "type")]
    pub run_type: String,
    /// Identity inputs (any JSON); default `{}`: one active run per tenant and type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Value>,
    /// Run-specific metadata (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// Who starts it; default "System".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<InitiatorBody>,
    /// The run's id, chosen by the caller (a UUID, not the nil one). Without it the id is
    /// derived from the `Idempotency-Key` (UUIDv5 of the tenant and the key, so a retry names
    /// the same run), or else fresh (UUIDv7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub run_id: Option<uuid::Uuid>,
    /// How long the run may stay queued (1–2,592,000 s); default: the run type's, else the
    /// server's, else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_deadline_seconds: Option<i64>,
    /// How long the run may run once started (1–2,592,000 s); defaults as above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_deadline_seconds: Option<i64>,
    /// How long the running run may go without a heartbeat or progress report (1–2,592,000 s),
    /// measured from its start until its first; defaults as above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout_seconds: Option<i64>,
}

/// The initiator of a queued run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitiatorBody {
    /// The user's id.
    pub user_id: Option<i64>,
    /// The user's name, as it should be remembered.
    pub name: Option<String>,
}

/// `POST …/progress`: increments since the reporter's last report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressBody {
    /// Items that succeeded.
    #[serde(default)]
    pub success: u64,
    /// Items that failed.
    #[serde(default)]
    pub failed: u64,
    /// Items skipped.
    #[serde(default)]
    pub skipped: u64,
    /// Sets or raises the total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Failures to merge into the summary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailureBody>,
}

/// One failure entry of a progress report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureBody {
    /// A stable code, e.g. `graph.throttled`.
    pub code: String,
    /// What went wrong (secrets are stripped before it is stored).
    pub message: String,
    /// How many items failed this way (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// `POST …/complete`: the outcome, and optionally the final counts and last failures in the
/// same call (one event).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// `succeeded`, `partially_succeeded` or `failed`, or `cancelled` after a cancel request;
    /// derived from the counts (the final ones, when given) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The absolute counts the run finished with; they replace the summed progress, and none
    /// may be below what was reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_counts: Option<FinalCountsBody>,
    /// Failures to merge into the summary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailureBody>,
}

/// Absolute counts a run finished with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinalCountsBody {
    /// How many items there were; the known total when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Items that succeeded.
    #[serde(default)]
    pub success: u64,
    /// Items that failed.
    #[serde(default)]
    pub failed: u64,
    /// Items skipped.
    #[serde(default)]
    pub skipped: u64,
}

/// `POST …/cancel`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why, in the requester's words (secrets are stripped and it is cut to 500 characters
    /// before it is stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST …/heartbeat` takes no fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {}

/// `POST …/dispatch-failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchFailedBody {
    /// A stable failure code.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// `POST …/start`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// The id the worker names itself by (1–128 characters of `[A-Za-z0-9._:@/-]`): the same
    /// worker starting the run again gets 200 and the run, another worker 409 naming the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

/// The answer of every command route: the run as it stands after the command, and where in the
/// log the command's event is.
///
/// Fields in alphabetical order: the order of the JSON map the server built before this type
/// existed, and of an answer replayed for an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CommandAnswer {
    /// Heartbeat and progress answers: whether someone asked to cancel the run (its worker
    /// should stop and complete it `cancelled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested: Option<bool>,
    /// Queue only: whether a new run was queued (`false`: an active run with the same identity
    /// exists, and `run` is that run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    /// The log position of the command's event: pass it as `min_position` to a query to read
    /// your own write. `null` when nothing was written (an existing run answered).
    pub position: Option<i64>,
    /// The run after the command.
    pub run: OperationRun,
}

/// The answer of `POST …/heartbeat`: the run, and whether its worker should stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatAnswer {
    /// Whether someone asked to cancel the run: stop and complete it `cancelled`.
    pub cancel_requested: bool,
    /// The run's latest log position (a heartbeat is not an event).
    pub position: i64,
    /// The run, with its new `last_heartbeat_at`.
    pub run: OperationRun,
}
