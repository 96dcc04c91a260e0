//! The stored event envelope: what a row of `events` holds, and how it decodes to a domain event.
//!
//! Payloads are decoded by their stored `(event_type, schema_version)`. Each type has its own
//! current version (`RunEvent::current_schema_version`); an older version is upcast here, on
//! read, one version step at a time, before it reaches the domain
//! (docs/adr/0001-event-format-and-versioning.md, docs/adr/0013).

use chrono::{DateTime, Utc};
use runledger_core::{EventId, RunEvent, RunId, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
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
        decode_payload(&self.event_type, self.schema_version, self.payload.clone()).map_err(
            |reason| StoreError::Decode {
                position: self.position,
                event_type: self.event_type.clone(),
                schema_version: self.schema_version,
                reason,
            },
        )
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

/// Decodes a stored payload of any version this code reads: upcast to its type's current
/// version, then decoded by the domain.
///
/// # Errors
/// Why the type, the version or the payload is not one this code knows.
pub fn decode_payload(
    event_type: &str,
    schema_version: i32,
    payload: Value,
) -> Result<RunEvent, String> {
    let payload = upcast(event_type, schema_version, payload)?;
    RunEvent::from_payload(event_type, payload).map_err(|e| e.to_string())
}

/// Brings a stored payload to the current schema version of its type, one version at a time.
///
/// A version newer than the current one is refused, not guessed at: it was written by newer
/// code, and reading it as an older shape could fold a wrong state.
fn upcast(event_type: &str, schema_version: i32, payload: Value) -> Result<Value, String> {
    let current = RunEvent::current_schema_version(event_type)
        .ok_or_else(|| format!("unknown event type {event_type}"))?;
    if !(1..=current).contains(&schema_version) {
        return Err(format!("unknown schema version {schema_version}"));
    }
    (schema_version..current).try_fold(payload, |payload, version| {
        upcast_step(event_type, version, payload)
    })
}

/// Rewrites a payload of `version` of `event_type` as `version + 1`.
///
/// Each arm writes the older version's meaning in the newer shape, as literal JSON: it must keep
/// meaning the same thing when the newer shape is later upcast again.
fn upcast_step(event_type: &str, version: i32, payload: Value) -> Result<Value, String> {
    let with = |payload: Value, field: &str, value: Value| match payload {
        Value::Object(mut fields) => {
            fields.insert(field.to_owned(), value);
            Ok(Value::Object(fields))
        }
        _ => Err("payload is not a JSON object".to_owned()),
    };
    match (event_type, version) {
        // Runs queued before limits existed have none.
        ("Queued", 1) => with(
            payload,
            "limits",
            json!({
                "start_deadline_seconds": null,
                "run_deadline_seconds": null,
                "heartbeat_timeout_seconds": null,
            }),
        ),
        // Starts before workers named themselves named none.
        ("Started", 1) => with(payload, "worker", Value::Null),
        // Version 2 only adds fields and reasons version 1 never wrote: a version-1 payload is a
        // version-2 payload with the same meaning.
        ("Completed", 1) => Ok(payload),
        (_, version) => Err(format!("no upcaster from schema version {version}")),
    }
}
