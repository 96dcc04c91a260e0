//! The command routes' request bodies, and their parsing into domain values (parse, don't
//! validate): a body that parses is a command the domain can decide.

use runledger_core::{
    FailureCode, FailureReport, Initiator, Outcome, ProgressDelta, RunId, RunIdentity, RunLimits,
    RunType, SummaryCounts, UserId, WorkerId,
};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::error::ApiError;

/// The longest failure message accepted before sanitizing (it is stored at most 500 characters).
const MAX_RAW_MESSAGE: usize = 4096;
/// The largest accepted `context`, in bytes of JSON.
const MAX_CONTEXT_BYTES: usize = 32 * 1024;

/// `POST /v1/tenants/{tenant_id}/runs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueRunBody {
    /// The run type, e.g. `inventory.sync`.
    #[serde(rename = "type")]
    pub run_type: String,
    /// Identity inputs (any JSON); default `{}`: one active run per tenant and type.
    #[serde(default)]
    pub identity: Option<Value>,
    /// Run-specific metadata (a JSON object).
    #[serde(default)]
    pub context: Option<Value>,
    /// Who starts it; default "System".
    #[serde(default)]
    pub initiator: Option<InitiatorBody>,
    /// The run's id, chosen by the caller (a UUID, not the nil one). Without it the id is
    /// derived from the `Idempotency-Key` (UUIDv5 of the tenant and the key, so a retry names
    /// the same run), or else fresh (UUIDv7).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub run_id: Option<uuid::Uuid>,
    /// How long the run may stay queued (1–2,592,000 s); default: the run type's, else the
    /// server's, else none.
    #[serde(default)]
    pub start_deadline_seconds: Option<i64>,
    /// How long the run may run once started (1–2,592,000 s); defaults as above.
    #[serde(default)]
    pub run_deadline_seconds: Option<i64>,
    /// How long the running run may go without a heartbeat or progress report (1–2,592,000 s),
    /// measured from its start until its first; defaults as above.
    #[serde(default)]
    pub heartbeat_timeout_seconds: Option<i64>,
}

/// The initiator of a queued run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitiatorBody {
    /// The user's id.
    pub user_id: Option<i64>,
    /// The user's name, as it should be remembered.
    pub name: Option<String>,
}

/// `POST …/progress`: increments since the reporter's last report.
#[derive(Debug, Deserialize, ToSchema)]
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
    pub total: Option<u64>,
    /// Failures to merge into the summary.
    #[serde(default)]
    pub failures: Vec<FailureBody>,
}

/// One failure entry of a progress report.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureBody {
    /// A stable code, e.g. `graph.throttled`.
    pub code: String,
    /// What went wrong (secrets are stripped before it is stored).
    pub message: String,
    /// How many items failed this way (default 1).
    pub count: Option<u64>,
}

/// `POST …/complete`: the outcome, and optionally the final counts and last failures in the
/// same call (one event).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// `succeeded`, `partially_succeeded` or `failed`, or `cancelled` after a cancel request;
    /// derived from the counts (the final ones, when given) when absent.
    pub outcome: Option<String>,
    /// The absolute counts the run finished with; they replace the summed progress, and none
    /// may be below what was reported.
    #[serde(default)]
    pub final_counts: Option<FinalCountsBody>,
    /// Failures to merge into the summary.
    #[serde(default)]
    pub failures: Vec<FailureBody>,
}

/// Absolute counts a run finished with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinalCountsBody {
    /// How many items there were; the known total when absent.
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why, in the requester's words (secrets are stripped and it is cut to 500 characters
    /// before it is stored).
    pub reason: Option<String>,
}

/// `POST …/heartbeat` takes no fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {}

/// `POST …/dispatch-failed`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchFailedBody {
    /// A stable failure code.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// `POST …/start`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// The id the worker names itself by (1–128 characters of `[A-Za-z0-9._:@/-]`): the same
    /// worker starting the run again gets 200 and the run, another worker 409 naming the holder.
    pub worker: Option<String>,
}

/// A queue body as domain values.
pub(crate) struct ParsedQueue {
    pub(crate) run_type: RunType,
    pub(crate) identity: RunIdentity,
    pub(crate) initiator: Initiator,
    pub(crate) context: Value,
    /// The caller's id for the run, if it chose one.
    pub(crate) run_id: Option<RunId>,
    /// The limits the request gave, before the defaults.
    pub(crate) limits: RunLimits,
}

impl QueueRunBody {
    /// The run to queue.
    pub(crate) fn parse(self) -> Result<ParsedQueue, ApiError> {
        let run_type = RunType::parse(&self.run_type)?;
        let identity_inputs = self.identity.unwrap_or_else(|| json!({}));
        refuse_nul("identity", &identity_inputs)?;
        let identity = RunIdentity::new(identity_inputs)?;
        let context = self.context.unwrap_or_else(|| json!({}));
        refuse_nul("context", &context)?;
        if !context.is_object() {
            return Err(ApiError::bad_field("context", "must be a JSON object"));
        }
        if context.to_string().len() > MAX_CONTEXT_BYTES {
            return Err(ApiError::bad_field(
                "context",
                "must be at most 32 KiB of JSON",
            ));
        }
        let initiator = match self.initiator {
            None
            | Some(InitiatorBody {
                user_id: None,
                name: None,
            }) => Initiator::system(),
            Some(InitiatorBody {
                user_id: Some(user),
                name: Some(name),
            }) => Initiator::user(
                UserId::new(user)
                    .map_err(|e| ApiError::bad_field("initiator.user_id", e.reason))?,
                &name,
            )?,
            Some(InitiatorBody {
                user_id: Some(_),
                name: None,
            }) => {
                return Err(ApiError::bad_field(
                    "initiator.name",
                    "is required with initiator.user_id",
                ));
            }
            Some(InitiatorBody {
                user_id: None,
                name: Some(_),
            }) => {
                return Err(ApiError::bad_field(
                    "initiator.user_id",
                    "is required with initiator.name",
                ));
            }
        };
        let run_id = match self.run_id {
            Some(id) if id.is_nil() => {
                return Err(ApiError::bad_field("run_id", "must not be the nil UUID"));
            }
            id => id.map(RunId::from_uuid),
        };
        let limits = RunLimits::from_seconds(
            self.start_deadline_seconds,
            self.run_deadline_seconds,
            self.heartbeat_timeout_seconds,
        )?;
        Ok(ParsedQueue {
            run_type,
            identity,
            initiator,
            context,
            run_id,
            limits,
        })
    }
}

impl StartBody {
    /// The worker that starts the run, if it named itself.
    pub(crate) fn parse(self) -> Result<Option<WorkerId>, ApiError> {
        Ok(self.worker.as_deref().map(WorkerId::parse).transpose()?)
    }
}

impl CancelBody {
    /// The reason, raw (the domain sanitizes and bounds it).
    pub(crate) fn parse(self) -> Result<Option<String>, ApiError> {
        if let Some(reason) = &self.reason {
            bounded_text("reason", reason)?;
        }
        Ok(self.reason)
    }
}

/// A progress body as domain values.
pub(crate) struct ParsedProgress {
    pub(crate) delta: ProgressDelta,
    pub(crate) total: Option<u64>,
    pub(crate) failures: Vec<FailureReport>,
}

impl ProgressBody {
    /// The increments, total and failures to report.
    pub(crate) fn parse(self) -> Result<ParsedProgress, ApiError> {
        let failures = parse_failures(&self.failures)?;
        Ok(ParsedProgress {
            delta: ProgressDelta {
                success: self.success,
                failed: self.failed,
                skipped: self.skipped,
            },
            total: self.total,
            failures,
        })
    }
}

/// A complete body as domain values.
pub(crate) struct ParsedComplete {
    pub(crate) outcome: Option<Outcome>,
    pub(crate) final_counts: Option<SummaryCounts>,
    pub(crate) failures: Vec<FailureReport>,
}

impl CompleteBody {
    /// The outcome asked for, if any, the final counts and the last failures.
    pub(crate) fn parse(self) -> Result<ParsedComplete, ApiError> {
        Ok(ParsedComplete {
            outcome: self
                .outcome
                .as_deref()
                .map(str::parse::<Outcome>)
                .transpose()?,
            final_counts: self.final_counts.map(|counts| SummaryCounts {
                total: counts.total,
                success: counts.success,
                failed: counts.failed,
                skipped: counts.skipped,
            }),
            failures: parse_failures(&self.failures)?,
        })
    }
}

impl DispatchFailedBody {
    /// The dispatch failure, counted once.
    pub(crate) fn parse(self) -> Result<FailureReport, ApiError> {
        FailureBody {
            code: self.code,
            message: self.message,
            count: Some(1),
        }
        .parse("")
    }
}

/// The failures of a body, each located as `failures[i].` in its problems.
fn parse_failures(failures: &[FailureBody]) -> Result<Vec<FailureReport>, ApiError> {
    failures
        .iter()
        .enumerate()
        .map(|(index, failure)| failure.parse(&format!("failures[{index}].")))
        .collect()
}

/// Refuses text longer than is accepted before sanitizing.
fn bounded_text(field: impl Into<String>, text: &str) -> Result<(), ApiError> {
    if text.chars().count() > MAX_RAW_MESSAGE {
        return Err(ApiError::bad_field(
            field,
            "must be at most 4096 characters",
        ));
    }
    Ok(())
}

impl FailureBody {
    /// Parses one failure of a body; `field_prefix` locates its fields in the body
    /// (`failures[2].` in a progress report, nothing in dispatch-failed), so a problem names
    /// the exact field.
    fn parse(&self, field_prefix: &str) -> Result<FailureReport, ApiError> {
        let field = |name: &str| format!("{field_prefix}{name}");
        let code = FailureCode::parse(&self.code)
            .map_err(|error| ApiError::bad_field(field("code"), error.reason))?;
        bounded_text(field("message"), &self.message)?;
        if self.count == Some(0) {
            return Err(ApiError::bad_field(field("count"), "must be at least 1"));
        }
        Ok(FailureReport {
            code,
            message: self.message.clone(),
            count: self.count.unwrap_or(1),
        })
    }
}

/// PostgreSQL cannot store U+0000 in `jsonb`: refuse it at the edge rather than fail the append.
fn refuse_nul(field: &'static str, value: &Value) -> Result<(), ApiError> {
    fn has_nul(value: &Value) -> bool {
        match value {
            Value::String(text) => text.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map
                .iter()
                .any(|(key, item)| key.contains('\0') || has_nul(item)),
            _ => false,
        }
    }
    if has_nul(value) {
        return Err(ApiError::bad_field(
            field,
            "must not contain the NUL character (\\u0000)",
        ));
    }
    Ok(())
}
