//! The per-run hash chain: each event's hash covers the previous event's hash and a canonical
//! encoding of the event's immutable fields, so changing, removing or reordering a stored event
//! breaks every later link.
//!
//! `hash = SHA-256(prev_hash || JCS({event_id, run_id, tenant_id, version, event_type,
//! schema_version, payload, metadata, recorded_at}))`, with `recorded_at` as RFC 3339 UTC with
//! microseconds, and 32 zero bytes as the first `prev_hash`. The format is documented in
//! docs/adr/0001-event-format-and-versioning.md and must never change for stored events.

use chrono::{DateTime, SecondsFormat, Utc};
use runledger_core::identity::canonical_json;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::schema::RecordedEvent;

/// The `prev_hash` of a run's first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// The immutable fields of an event that its hash covers.
#[derive(Debug, Clone, Copy)]
pub struct HashedFields<'a> {
    /// Event id.
    pub event_id: uuid::Uuid,
    /// Run id.
    pub run_id: uuid::Uuid,
    /// Tenant id.
    pub tenant_id: i64,
    /// Stream version.
    pub version: u64,
    /// Stored type name.
    pub event_type: &'a str,
    /// Payload schema version.
    pub schema_version: i32,
    /// Payload, as stored.
    pub payload: &'a Value,
    /// Metadata, as stored.
    pub metadata: &'a Value,
    /// Record time.
    pub recorded_at: DateTime<Utc>,
}

/// The hash of an event following `prev_hash`.
pub fn event_hash(prev_hash: &[u8; 32], fields: &HashedFields<'_>) -> [u8; 32] {
    let document = json!({
        "event_id": fields.event_id,
        "run_id": fields.run_id,
        "tenant_id": fields.tenant_id,
        "version": fields.version,
        "event_type": fields.event_type,
        "schema_version": fields.schema_version,
        "payload": fields.payload,
        "metadata": fields.metadata,
        "recorded_at": fields.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    });
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(canonical_json(&document));
    hasher.finalize().into()
}

impl RecordedEvent {
    /// The fields of this stored event that its hash covers.
    pub fn hashed_fields(&self) -> HashedFields<'_> {
        HashedFields {
            event_id: self.event_id.as_uuid(),
            run_id: self.run_id.as_uuid(),
            tenant_id: self.tenant_id.get(),
            version: self.version,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            payload: &self.payload,
            metadata: &self.metadata,
            recorded_at: self.recorded_at,
        }
    }

    /// Whether the stored hash is the hash of the stored fields after the stored `prev_hash`:
    /// the one check of an event that needs no other event, so verifiers may run it ahead, in
    /// parallel, and pass the answer to [`ChainHead::next_checked`].
    pub fn hash_is_intact(&self) -> bool {
        event_hash(&self.prev_hash, &self.hashed_fields()) == self.hash
    }
}

/// Why a run's chain does not verify, at its first broken event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// The stored hash does not match the stored fields: something in the row was changed.
    HashMismatch,
    /// The event does not link to the previous event's hash: an event before it is missing or
    /// was replaced.
    BrokenLink,
    /// Versions are not 1, 2, 3…: an event is missing or versions were swapped.
    VersionGap {
        /// The version that should be here.
        expected: u64,
    },
    /// The event comes after a later event of its run in log order (`tx_id, position`), which
    /// appends never produce: events were reordered. Only a walk in log order can see this.
    OrderChanged,
}

/// The first broken event of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFailure {
    /// The version of the first event that does not verify.
    pub version: u64,
    /// Its global position.
    pub position: i64,
    /// What is wrong.
    pub reason: ChainBreak,
}

/// Where a run's chain stands after the events verified so far: the last version and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// The version of the last event verified (0 before the first).
    pub version: u64,
    /// Its hash ([`GENESIS`] before the first).
    pub hash: [u8; 32],
}

impl ChainHead {
    /// Before a run's first event.
    pub const START: ChainHead = ChainHead {
        version: 0,
        hash: GENESIS,
    };

    /// Checks that `event` is the next link of the chain; returns the head after it.
    ///
    /// # Errors
    /// The [`ChainBreak`] that `event` shows.
    pub fn next(&self, event: &RecordedEvent) -> Result<ChainHead, ChainBreak> {
        self.next_checked(event, RecordedEvent::hash_is_intact(event))
    }

    /// As [`ChainHead::next`], given whether `event`'s hash is intact
    /// ([`RecordedEvent::hash_is_intact`], computed ahead).
    ///
    /// # Errors
    /// The [`ChainBreak`] that `event` shows.
    pub fn next_checked(
        &self,
        event: &RecordedEvent,
        hash_is_intact: bool,
    ) -> Result<ChainHead, ChainBreak> {
        let expected = self.version + 1;
        if event.version < expected {
            return Err(ChainBreak::OrderChanged);
        }
        if event.version > expected {
            return Err(ChainBreak::VersionGap { expected });
        }
        if event.prev_hash != self.hash {
            return Err(ChainBreak::BrokenLink);
        }
        // The stored `prev_hash` is this head's hash here, so `hash_is_intact` checked the hash
        // that follows it.
        if !hash_is_intact {
            return Err(ChainBreak::HashMismatch);
        }
        Ok(ChainHead {
            version: event.version,
            hash: event.hash,
        })
    }
}

/// Walks one run's events in stream order; reports the first event that breaks the chain.
pub fn verify_chain<'a>(
    events: impl IntoIterator<Item = &'a RecordedEvent>,
) -> Result<u64, ChainFailure> {
    let mut head = ChainHead::START;
    for event in events {
        head = head.next(event).map_err(|reason| ChainFailure {
            version: event.version,
            position: event.position,
            reason,
        })?;
    }
    Ok(head.version)
}
