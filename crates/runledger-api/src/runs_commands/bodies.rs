//! The command routes' request bodies, and their parsing into domain values (parse, don't
//! validate): a body that parses is a command the domain can decide.

use runledger_core::{
    FailureCode, FailureReport, Initiator, Outcome, ProgressDelta, RunIdentity, RunType, UserId,
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

/// `POST …/complete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// `succeeded`, `partially_succeeded` or `failed`; derived from the counts when absent.
    pub outcome: Option<String>,
}

/// `POST …/dispatch-failed`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchFailedBody {
    /// A stable failure code.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// `POST …/start` takes no fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {}

/// A queue body as domain values.
pub(crate) struct ParsedQueue {
    pub(crate) run_type: RunType,
    pub(crate) identity: RunIdentity,
    pub(crate) initiator: Initiator,
    pub(crate) context: Value,
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
        Ok(ParsedQueue {
            run_type,
            identity,
            initiator,
            context,
        })
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
        let failures = self
            .failures
            .iter()
            .enumerate()
            .map(|(index, failure)| failure.parse(&format!("failures[{index}].")))
            .collect::<Result<Vec<_>, _>>()?;
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

impl CompleteBody {
    /// The outcome asked for, if any.
    pub(crate) fn parse(self) -> Result<Option<Outcome>, ApiError> {
        Ok(self
            .outcome
            .as_deref()
            .map(str::parse::<Outcome>)
            .transpose()?)
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

impl FailureBody {
    /// Parses one failure of a body; `field_prefix` locates its fields in the body
    /// (`failures[2].` in a progress report, nothing in dispatch-failed), so a problem names
    /// the exact field.
    fn parse(&self, field_prefix: &str) -> Result<FailureReport, ApiError> {
        let field = |name: &str| format!("{field_prefix}{name}");
        let code = FailureCode::parse(&self.code)
            .map_err(|error| ApiError::bad_field(field("code"), error.reason))?;
        if self.message.chars().count() > MAX_RAW_MESSAGE {
            return Err(ApiError::bad_field(
                field("message"),
                "must be at most 4096 characters",
            ));
        }
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
