//! The command routes' request bodies (the wire crate's types, shared with the client) parsed
//! into domain values (parse, don't validate): a body that parses is a command the domain can
//! decide.

use runledger_core::{
    FailureCode, FailureReport, Initiator, Outcome, ProgressDelta, RunIdentity, RunType, UserId,
};
use runledger_wire::{
    CompleteBody, DispatchFailedBody, FailureBody, InitiatorBody, ProgressBody, QueueRunBody,
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

impl ParseBody for ProgressBody {
    type Parsed = ParsedProgress;

    /// The increments, total and failures to report.
    fn parse(self) -> Result<ParsedProgress, ApiError> {
        let failures = self
            .failures
            .iter()
            .enumerate()
            .map(|(index, failure)| parse_failure(failure, &format!("failures[{index}].")))
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

impl ParseBody for CompleteBody {
    type Parsed = Option<Outcome>;

    /// The outcome asked for, if any.
    fn parse(self) -> Result<Option<Outcome>, ApiError> {
        Ok(self
            .outcome
            .as_deref()
            .map(str::parse::<Outcome>)
            .transpose()?)
    }
}

impl ParseBody for DispatchFailedBody {
    type Parsed = FailureReport;

    /// The dispatch failure, counted once.
    fn parse(self) -> Result<FailureReport, ApiError> {
        let failure = FailureBody {
            code: self.code,
            message: self.message,
            count: Some(1),
        };
        parse_failure(&failure, "")
    }
}

/// Parses one failure of a body; `field_prefix` locates its fields in the body (`failures[2].`
/// in a progress report, nothing in dispatch-failed), so a problem names the exact field.
fn parse_failure(failure: &FailureBody, field_prefix: &str) -> Result<FailureReport, ApiError> {
    let field = |name: &str| format!("{field_prefix}{name}");
    let code = FailureCode::parse(&failure.code)
        .map_err(|error| ApiError::bad_field(field("code"), error.reason))?;
    if failure.message.chars().count() > MAX_RAW_MESSAGE {
        return Err(ApiError::bad_field(
            field("message"),
            "must be at most 4096 characters",
        ));
    }
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
