//! The events of a run: the facts the ledger stores, forever.
//!
//! Events are a persisted, public format (docs/event-catalog.md): each has a stored type name and
//! a payload schema version, both literals that never change. Renaming a field or variant is a
//! new schema version with an upcaster in the store, never a refactor.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::counts::{ProgressDelta, SummaryCounts};
use crate::failure::FailureEntry;
use crate::identity::RunIdentityHash;
use crate::ids::{RunId, TenantId};
use crate::initiator::Initiator;
use crate::limits::{Limit, LimitSeconds, RunLimits};
use crate::run_type::RunType;
use crate::status::Outcome;
use crate::worker::WorkerId;

/// One fact in a run's history.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The run was accepted and waits for a worker.
    Queued(RunQueued),
    /// A worker began executing the run.
    Started(RunStarted),
    /// A worker reported progress.
    Progressed(RunProgressed),
    /// Someone asked a running run to stop; its worker acknowledges by completing it `cancelled`.
    CancelRequested(RunCancelRequested),
    /// The run finished with a terminal outcome.
    Completed(RunCompleted),
}

/// Payload of `Queued` (schema version 2): everything fixed at queue time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunQueued {
    /// The run (= stream) id.
    pub run_id: RunId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The run type, e.g. `inventory.sync`.
    #[serde(rename = "type")]
    pub run_type: RunType,
    /// The dedupe key, computed by `decide` from tenant, type and identity.
    pub run_identity_hash: RunIdentityHash,
    /// The identity inputs the hash was computed from, kept so auditors can recompute it.
    pub identity: Value,
    /// Who started it.
    pub initiator: Initiator,
    /// Run-specific metadata, e.g. `{"restore_run_id": 123}`.
    pub context: Value,
    /// When it was queued (the seed's `created_at`).
    pub queued_at: DateTime<Utc>,
    /// The lifecycle limits it runs under, after the server's and the run type's defaults; new
    /// in version 2, where it is required (version 1 payloads are upcast with no limits).
    pub limits: RunLimits,
}

/// Payload of `Started` (schema version 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    /// When execution began.
    pub started_at: DateTime<Utc>,
    /// The worker that started it, when it named itself; new in version 2 (written as `null`
    /// when the start named no worker).
    pub worker: Option<WorkerId>,
}

/// Payload of `Progressed` (schema version 1): increments, never absolute counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunProgressed {
    /// Items done since the reporter's previous report.
    pub delta: ProgressDelta,
    /// The total, when this report sets or raises it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Sanitized failures to merge into the summary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailureEntry>,
    /// When the worker reported.
    pub reported_at: DateTime<Utc>,
}

/// Payload of `CancelRequested` (schema version 1), and the state's record of a cancel request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCancelRequested {
    /// Why, in the requester's words: sanitized like failure messages (white space collapsed,
    /// secrets redacted, at most 500 characters); `null` when none was given.
    pub reason: Option<String>,
    /// When it was asked.
    pub requested_at: DateTime<Utc>,
}

/// Why a run completed: the `reason` tag of `Completed`, with what each reason records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum CompletionReason {
    /// A worker finished it.
    Finished,
    /// Handing it to a worker failed, so it completed as failed while still queued.
    DispatchFailed,
    /// A limit passed (version 2): the run completed as `failed`.
    TimedOut {
        /// Which limit, and what the decision was measured from.
        time_out: LimitPassed,
    },
    /// It was cancelled (version 2): at once while queued, or by its worker after a request.
    Cancelled {
        /// The request it answers.
        cancellation: RunCancelRequested,
    },
}

impl CompletionReason {
    /// The stored `reason` tag.
    pub const fn as_str(&self) -> &'static str {
        match self {
            CompletionReason::Finished => "finished",
            CompletionReason::DispatchFailed => "dispatch_failed",
            CompletionReason::TimedOut { .. } => "timed_out",
            CompletionReason::Cancelled { .. } => "cancelled",
        }
    }
}

/// What a time-out records, so that an auditor can check the decision from the log alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitPassed {
    /// Which limit passed.
    pub limit: Limit,
    /// Its length, as the `Queued` event gave it.
    pub limit_seconds: LimitSeconds,
    /// The instant it passed: queued, started or last heartbeat, plus the length.
    pub passed_at: DateTime<Utc>,
    /// The latest heartbeat or progress report seen when deciding; `null` when there was none
    /// (a heartbeat timeout is then measured from the start).
    pub last_heartbeat_at: Option<DateTime<Utc>>,
}

/// Payload of `Completed` (schema version 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCompleted {
    /// The terminal outcome.
    pub outcome: Outcome,
    /// Why it completed: the `reason` field, and beside it `time_out` or `cancellation`.
    #[serde(flatten)]
    pub reason: CompletionReason,
    /// Sanitized failures to merge into the summary (the dispatch failure, for instance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailureEntry>,
    /// The absolute counts the worker finished with, when it gave them (version 2); they replace
    /// the summed progress, which `decide` checked they do not undercut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_counts: Option<SummaryCounts>,
    /// When it finished.
    pub completed_at: DateTime<Utc>,
}

impl RunEvent {
    /// Stored type names, in lifecycle order.
    pub const TYPES: [&'static str; 5] = [
        "Queued",
        "Started",
        "Progressed",
        "CancelRequested",
        "Completed",
    ];

    /// The stored type name: a literal, never derived from a Rust type path.
    pub const fn event_type(&self) -> &'static str {
        match self {
            RunEvent::Queued(_) => "Queued",
            RunEvent::Started(_) => "Started",
            RunEvent::Progressed(_) => "Progressed",
            RunEvent::CancelRequested(_) => "CancelRequested",
            RunEvent::Completed(_) => "Completed",
        }
    }

    /// The schema version this code writes a stored type with, or `None` for a type it does not
    /// know. Versions are per type: a type's version moves only when its payload changes.
    pub fn current_schema_version(event_type: &str) -> Option<i32> {
        match event_type {
            "Queued" | "Started" | "Completed" => Some(2),
            "Progressed" | "CancelRequested" => Some(1),
            _ => None,
        }
    }

    /// The schema version of this event's payload: its type's current version.
    pub fn schema_version(&self) -> i32 {
        Self::current_schema_version(self.event_type())
            .unwrap_or_else(|| unreachable!("every event type has a current schema version"))
    }

    /// When the event happened, as the command said.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            RunEvent::Queued(e) => e.queued_at,
            RunEvent::Started(e) => e.started_at,
            RunEvent::Progressed(e) => e.reported_at,
            RunEvent::CancelRequested(e) => e.requested_at,
            RunEvent::Completed(e) => e.completed_at,
        }
    }

    /// The payload as JSON, in the current schema version.
    pub fn payload(&self) -> Value {
        let payload = match self {
            RunEvent::Queued(e) => serde_json::to_value(e),
            RunEvent::Started(e) => serde_json::to_value(e),
            RunEvent::Progressed(e) => serde_json::to_value(e),
            RunEvent::CancelRequested(e) => serde_json::to_value(e),
            RunEvent::Completed(e) => serde_json::to_value(e),
        };
        // The payload types hold only strings, numbers, maps and JSON values: always serializable.
        payload.unwrap_or_else(|e| unreachable!("event payloads always serialize: {e}"))
    }

    /// Decodes a payload of its type's current schema version.
    ///
    /// # Errors
    /// [`serde_json::Error`] when the type name is unknown or the payload does not match it;
    /// older schema versions are upcast by the store before they reach this.
    pub fn from_payload(event_type: &str, payload: Value) -> Result<Self, serde_json::Error> {
        Ok(match event_type {
            "Queued" => RunEvent::Queued(serde_json::from_value(payload)?),
            "Started" => RunEvent::Started(serde_json::from_value(payload)?),
            "Progressed" => RunEvent::Progressed(serde_json::from_value(payload)?),
            "CancelRequested" => RunEvent::CancelRequested(serde_json::from_value(payload)?),
            "Completed" => RunEvent::Completed(serde_json::from_value(payload)?),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown event type {other}"
                )));
            }
        })
    }
}
