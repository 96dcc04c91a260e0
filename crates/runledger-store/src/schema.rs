//! The stored event envelope: what a row of `events` holds, and how it decodes to a domain event.
//!
//! Payloads are decoded by their stored `(event_type, schema_version)`. Version 1 is the current
//! shape of every type; an older version would be upcast here, on read, before it reaches the
//! domain (docs/adr/0001-event-format-and-versioning.md).

use chrono::{DateTime, Utc};
use runledger_core::{EventId, RunEvent, RunId, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::StoreError;

/// Who and what caused an event; part of the hashed, immutable record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Who issued the command: `user:42`, `token:ci-bot`, `cli`, `system`.
    pub actor: String,
    /// Groups the events of one business flow across runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The event or message that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The request that carried the command (HTTP `x-request-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl EventMetadata {
    /// Metadata naming only the actor.
    pub fn actor(actor: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            ..Self::default()
        }
    }

    /// As stored in the `metadata` column.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self)
            .unwrap_or_else(|e| unreachable!("metadata always serializes: {e}"))
    }
}

/// One stored event, exactly as its row holds it (payload and metadata undecoded, so that hashes
/// are checked over what is stored, not over a re-encoding).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Global position (unique, ascending at insert; see [`crate::LogCursor`] for read order).
    pub position: i64,
    /// The id of the transaction that wrote it.
    pub tx_id: u64,
    /// The event id.
    pub event_id: EventId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The run (= stream).
    pub run_id: RunId,
    /// The stream version: 1, 2, 3…
    pub version: u64,
    /// Stored type name.
    pub event_type: String,
    /// Payload schema version.
    pub schema_version: i32,
    /// The payload as stored.
    pub payload: Value,
    /// The metadata as stored.
    pub metadata: Value,
    /// Database clock at append.
    pub recorded_at: DateTime<Utc>,
    /// The previous event's hash in this run (zeros for version 1).
    pub prev_hash: [u8; 32],
    /// This event's hash.
    pub hash: [u8; 32],
}

impl RecordedEvent {
    /// Decodes the domain event, upcasting older schema versions.
    ///
    /// # Errors
    /// [`StoreError::Decode`] when the type, version or payload is not one this code knows.
    pub fn decode(&self) -> Result<RunEvent, StoreError> {
        let decode_error = |reason: String| StoreError::Decode {
            position: self.position,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            reason,
        };
        let payload = upcast(&self.event_type, self.schema_version, self.payload.clone())
            .map_err(decode_error)?;
        RunEvent::from_payload(&self.event_type, payload).map_err(|e| decode_error(e.to_string()))
    }

    /// Decodes the metadata.
    ///
    /// # Errors
    /// [`StoreError::Decode`] when the stored metadata is not an [`EventMetadata`].
    pub fn decode_metadata(&self) -> Result<EventMetadata, StoreError> {
        serde_json::from_value(self.metadata.clone()).map_err(|e| StoreError::Decode {
            position: self.position,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            reason: format!("metadata: {e}"),
        })
    }
}

/// Brings a stored payload to the current schema version of its type.
///
/// Every type is at version 1 today, so there is nothing to upcast yet; a future version 2 adds
/// an arm here that rewrites version-1 payloads, and a fixture test that reads one.
fn upcast(event_type: &str, schema_version: i32, payload: Value) -> Result<Value, String> {
    match (event_type, schema_version) {
        (_, RunEvent::SCHEMA_VERSION) => Ok(payload),
        (_, version) => Err(format!("unknown schema version {version}")),
    }
}
