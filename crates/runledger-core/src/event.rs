//! The events of a run: the facts the ledger stores, forever.
//!
//! Events are a persisted, public format (docs/event-catalog.md): each has a stored type name and
//! a payload schema version, both literals that never change. Renaming a field or variant is a
//! new schema version with an upcaster in the store, never a refactor.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::counts::ProgressDelta;
use crate::failure::FailureEntry;
use crate::identity::RunIdentityHash;
use crate::ids::{RunId, TenantId};
use crate::initiator::Initiator;
use crate::run_type::RunType;
use crate::status::Outcome;

/// One fact in a run's history.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The run was accepted and waits for a worker.
    Queued(RunQueued),
    /// A worker began executing the run.
    Started(RunStarted),
    /// A worker reported progress.
    Progressed(RunProgressed),
    /// The run finished with a terminal outcome.
    Completed(RunCompleted),
}

/// Payload of `Queued` (schema version 1): everything fixed at queue time.
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
}

/// Payload of `Started` (schema version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    /// When execution began.
    pub started_at: DateTime<Utc>,
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

/// Why a run completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionReason {
    /// A worker finished it.
    Finished,
    /// Handing it to a worker failed, so it completed as failed while still queued.
    DispatchFailed,
}

/// Payload of `Completed` (schema version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCompleted {
    /// The terminal outcome.
    pub outcome: Outcome,
    /// Whether a worker finished it or dispatch failed.
    pub reason: CompletionReason,
    /// Sanitized failures to merge into the summary (the dispatch failure, for instance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailureEntry>,
    /// When it finished.
    pub completed_at: DateTime<Utc>,
}

impl RunEvent {
    /// The payload schema version every event type is written with today.
    pub const SCHEMA_VERSION: i32 = 1;

    /// Stored type names, in lifecycle order.
    pub const TYPES: [&'static str; 4] = ["Queued", "Started", "Progressed", "Completed"];

    /// The stored type name: a literal, never derived from a Rust type path.
    pub const fn event_type(&self) -> &'static str {
        match self {
            RunEvent::Queued(_) => "Queued",
            RunEvent::Started(_) => "Started",
            RunEvent::Progressed(_) => "Progressed",
            RunEvent::Completed(_) => "Completed",
        }
    }

    /// When the event happened, as the command said.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            RunEvent::Queued(e) => e.queued_at,
            RunEvent::Started(e) => e.started_at,
            RunEvent::Progressed(e) => e.reported_at,
            RunEvent::Completed(e) => e.completed_at,
        }
    }

    /// The payload as JSON, in the current schema version.
    pub fn payload(&self) -> Value {
        let payload = match self {
            RunEvent::Queued(e) => serde_json::to_value(e),
            RunEvent::Started(e) => serde_json::to_value(e),
            RunEvent::Progressed(e) => serde_json::to_value(e),
            RunEvent::Completed(e) => serde_json::to_value(e),
        };
        // The payload types hold only strings, numbers, maps and JSON values: always serializable.
        payload.unwrap_or_else(|e| unreachable!("event payloads always serialize: {e}"))
    }

    /// Decodes a payload of the current schema version.
    ///
    /// # Errors
    /// [`serde_json::Error`] when the type name is unknown or the payload does not match it;
    /// older schema versions are upcast by the store before they reach this.
    pub fn from_payload(event_type: &str, payload: Value) -> Result<Self, serde_json::Error> {
        Ok(match event_type {
            "Queued" => RunEvent::Queued(serde_json::from_value(payload)?),
            "Started" => RunEvent::Started(serde_json::from_value(payload)?),
            "Progressed" => RunEvent::Progressed(serde_json::from_value(payload)?),
            "Completed" => RunEvent::Completed(serde_json::from_value(payload)?),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown event type {other}"
                )));
            }
        })
    }
}
