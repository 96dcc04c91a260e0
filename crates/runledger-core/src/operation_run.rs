//! The seed's OperationRun record as JSON: the one representation of a run's state that the
//! CLI, the audit replay and the HTTP state route print, with the seed's field names.

use chrono::SecondsFormat;
use serde_json::{Value, json};

use crate::run::RunSnapshot;

impl RunSnapshot {
    /// The OperationRun fields of the seed, plus `version`, `done` and the identity inputs.
    pub fn to_operation_run_json(&self) -> Value {
        let time =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
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
        })
    }
}
