//! The command routes' request bodies (the wire crate's types, shared with the client) parsed
//! into domain values (parse, don't validate): a body that parses is a command the domain can
//! decide.

use runledger_core::{
    FailureCode, FailureReport, Initiator, Outcome, ProgressDelta, RunId, RunIdentity, RunLimits,
    RunType, SummaryCounts, UserId, WorkerId,
};
use runledger_wire::{
    CancelBody, CompleteBody, DispatchFailedBody, FailureBody, InitiatorBody, ProgressBody,
    QueueRunBody, StartBody,
};
use serde_json::{Value, json};

use crate::error::ApiError;

/// The longest failure message accepted before sanitizing (it is stored at most 500 characters).
const MAX_RAW_MESSAGE: usize = 4096;
/// The largest accepted `context`, in bytes of JSON.
const MAX_CONTEXT_BYTES: usize = 32 * 1024;

/// A request body of a command route, parsed into domain values.
pub(crate) trait ParseBody {
    /// The domain values.
    type Parsed;

    /// Parses the body.
    ///
    /// # Errors
    /// A 400 naming the first field that is not what the domain accepts.
    fn parse(self) -> Result<Self::Parsed, ApiError>;
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

impl ParseBody for QueueRunBody {
    type Parsed = ParsedQueue;

    /// The run to queue.
    fn parse(self) -> Result<ParsedQueue, ApiError> {
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

impl ParseBody for StartBody {
    type Parsed = Option<WorkerId>;

    /// The worker that starts the run, if it named itself.
    fn parse(self) -> Result<Option<WorkerId>, ApiError> {
        Ok(self.worker.as_deref().map(WorkerId::parse).transpose()?)
    }
}

impl ParseBody for CancelBody {
    type Parsed = Option<String>;

    /// The reason, raw (the domain sanitizes and bounds it).
    fn parse(self) -> Result<Option<String>, ApiError> {
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

impl ParseBody for ProgressBody {
    type Parsed = ParsedProgress;

    /// The increments, total and failures to report.
    fn parse(self) -> Result<ParsedProgress, ApiError> {
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

impl ParseBody for CompleteBody {
    type Parsed = ParsedComplete;

    /// The outcome asked for, if any, the final counts and the last failures.
    fn parse(self) -> Result<ParsedComplete, ApiError> {
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

impl ParseBody for DispatchFailedBody {
    type Parsed = FailureReport;

    /// The dispatch failure, counted once.
    fn parse(self) -> Result<FailureReport, ApiError> {
        parse_failure(
            &FailureBody {
                code: self.code,
                message: self.message,
                count: Some(1),
            },
            "",
        )
    }
}

/// The failures of a body, each located as `failures[i].` in its problems.
fn parse_failures(failures: &[FailureBody]) -> Result<Vec<FailureReport>, ApiError> {
    failures
        .iter()
        .enumerate()
        .map(|(index, failure)| parse_failure(failure, &format!("failures[{index}].")))
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

/// Parses one failure of a body; `field_prefix` locates its fields in the body
/// (`failures[2].` in a progress report, nothing in dispatch-failed), so a problem names
/// the exact field.
fn parse_failure(failure: &FailureBody, field_prefix: &str) -> Result<FailureReport, ApiError> {
    let field = |name: &str| format!("{field_prefix}{name}");
    let code = FailureCode::parse(&failure.code)
        .map_err(|error| ApiError::bad_field(field("code"), error.reason))?;
    bounded_text(field("message"), &failure.message)?;
    if failure.count == Some(0) {
        return Err(ApiError::bad_field(field("count"), "must be at least 1"));
    }
    Ok(FailureReport {
        code,
        message: failure.message.clone(),
        count: failure.count.unwrap_or(1),
    })
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
