//! The seed's OperationRun record as JSON: the one representation of a run's state that the
//! CLI, the audit replay and the HTTP state route print, with the seed's field names.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::event::CompletionReason;
use crate::run::RunSnapshot;

/// The keys of the lifecycle fields of the OperationRun JSON (issue 13), after the seed's: the
/// limits and when they pass, the worker, the last progress report, the cancel request, and why
/// the run completed.
pub const LIFECYCLE_FIELDS: [&str; 10] = [
    "limits",
    "start_deadline_at",
    "run_deadline_at",
    "worker",
    "last_progress_at",
    "cancel_requested",
    "cancel_requested_at",
    "cancel_reason",
    "completion_reason",
    "time_out",
];

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl RunSnapshot {
    /// The OperationRun fields of the seed, plus `version`, `done` and the identity inputs, and
    /// the lifecycle fields a worker or an operator needs: the limits and the instants they pass,
    /// the worker, the last progress report, the cancel request, and why the run completed
    /// (with the limit that passed, for a time-out).
    ///
    /// The last heartbeat is not here: it is kept outside the log, so whoever holds it adds it.
    pub fn to_operation_run_json(&self) -> Value {
        let time_out = match &self.completion {
            Some(CompletionReason::TimedOut { time_out }) => json!({
                "limit": time_out.limit.as_str(),
                "code": time_out.limit.failure_code(),
                "limit_seconds": time_out.limit_seconds.get(),
                "passed_at": time(time_out.passed_at),
                "last_heartbeat_at": time_out.last_heartbeat_at.map(time),
            }),
            _ => Value::Null,
        };
        let cancel = self.cancel_requested.as_ref();
        json!({
            "id": self.id.to_string(),
            "tenant_id": self.tenant_id.get(),
            "user_id": self.initiator.user_id.map(|u| u.get()),
            "initiator_name": self.initiator.name,
            "type": self.run_type.as_str(),
            "status": self.status.as_str(),
            "outcome": self.outcome.as_str(),
            "run_identity_hash": self.run_identity_hash.to_hex(),
            "identity": self.identity,
            "summary_counts": self.summary_counts,
            "failure_summary": self.failure_summary,
            "context": self.context,
            "started_at": self.started_at.map(time),
            "completed_at": self.completed_at.map(time),
            "created_at": time(self.created_at),
            "updated_at": time(self.updated_at),
            "version": self.version,
            "done": !self.status.is_active(),
            "limits": self.limits,
            "start_deadline_at": self.start_deadline_at().map(time),
            "run_deadline_at": self.run_deadline_at().map(time),
            "worker": self.worker.as_ref().map(|worker| worker.as_str()),
            "last_progress_at": self.last_progress_at.map(time),
            "cancel_requested": cancel.is_some(),
            "cancel_requested_at": cancel.map(|request| time(request.requested_at)),
            "cancel_reason": cancel.and_then(|request| request.reason.as_deref()),
            "completion_reason": self.completion.as_ref().map(CompletionReason::as_str),
            "time_out": time_out,
        })
    }
}
