//! The anchor itself: its fields, its own hash, its line in an anchor file, and the checks of a
//! run of anchors' chain (edited, replaced or missing anchors).
//!
//! An anchor's `hash = SHA-256(prev_hash ‖ JCS({sequence, cursor, event_count, run_count,
//! tenants, recorded_at}))`, `prev_hash` being the previous anchor's hash (zeros for the first).

use std::fmt;

use chrono::{DateTime, Utc};
use runledger_core::TenantId;
use runledger_core::identity::canonical_json;
use runledger_store::LogCursor;
use runledger_store::chain::GENESIS;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::digest::{LogDigest, TenantState};
use super::serde_fields::{as_text, hex32, micros};
use crate::format::{json_line, rfc3339};

/// One tenant's entry in an anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchoredTenant {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its events up to the anchor's cursor.
    pub events: u64,
    /// Its runs up to the anchor's cursor.
    pub runs: u64,
    /// The rolling digest of those events' hashes, lowercase hex.
    #[serde(with = "hex32")]
    pub digest: [u8; 32],
}

impl AnchoredTenant {
    /// The state this entry records.
    pub fn state(&self) -> TenantState {
        TenantState {
            events: self.events,
            runs: self.runs,
            digest: self.digest,
        }
    }
}

/// A digest of the whole log up to `cursor`, chained to the anchor before it. Exported as one
/// line of JSON with these fields (docs/export-format.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// 1, 2, 3…
    pub sequence: u64,
    /// The last event the anchor covers, in safe log order.
    #[serde(with = "as_text")]
    pub cursor: LogCursor,
    /// Events up to the cursor, every tenant.
    pub event_count: u64,
    /// Runs up to the cursor, every tenant.
    pub run_count: u64,
    /// Every tenant with events up to the cursor, in id order.
    pub tenants: Vec<AnchoredTenant>,
    /// The database clock when the anchor was recorded.
    #[serde(with = "micros")]
    pub recorded_at: DateTime<Utc>,
    /// The previous anchor's hash, lowercase hex (zeros for the first).
    #[serde(with = "hex32")]
    pub prev_hash: [u8; 32],
    /// This anchor's hash, lowercase hex.
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

impl Anchor {
    /// The anchor of `digest`, following `previous` (or the first one).
    pub fn new(previous: Option<&Anchor>, digest: &LogDigest, recorded_at: DateTime<Utc>) -> Self {
        let tenants: Vec<AnchoredTenant> = digest
            .tenants()
            .map(|(tenant_id, state)| AnchoredTenant {
                tenant_id,
                events: state.events,
                runs: state.runs,
                digest: state.digest,
            })
            .collect();
        let mut anchor = Anchor {
            sequence: previous.map_or(1, |p| p.sequence + 1),
            cursor: digest.cursor(),
            event_count: tenants.iter().map(|t| t.events).sum(),
            run_count: tenants.iter().map(|t| t.runs).sum(),
            tenants,
            // The hash covers the time as stored: microseconds.
            recorded_at: micros::truncate(recorded_at),
            prev_hash: previous.map_or(GENESIS, |p| p.hash),
            hash: GENESIS,
        };
        anchor.hash = anchor.computed_hash();
        anchor
    }

    /// The hash this anchor's fields give.
    pub fn computed_hash(&self) -> [u8; 32] {
        let document = json!({
            "sequence": self.sequence,
            "cursor": self.cursor.to_string(),
            "event_count": self.event_count,
            "run_count": self.run_count,
            "tenants": self.tenants,
            "recorded_at": rfc3339(self.recorded_at),
        });
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash);
        hasher.update(canonical_json(&document));
        hasher.finalize().into()
    }

    /// The entry of `tenant` (empty when the tenant had no events by then).
    pub fn tenant(&self, tenant: TenantId) -> TenantState {
        self.tenants
            .iter()
            .find(|entry| entry.tenant_id == tenant)
            .map_or_else(TenantState::default, AnchoredTenant::state)
    }

    /// The anchor as one line of the anchor file.
    pub fn to_line(&self) -> String {
        json_line(self)
    }

    /// Reads a line of an anchor file.
    ///
    /// # Errors
    /// A description of what is wrong with it.
    pub fn parse_line(line: &str) -> Result<Anchor, String> {
        serde_json::from_str(line).map_err(|e| format!("not an anchor: {e}"))
    }
}

/// What is wrong with an anchor's own record: the anchors' chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorBreak {
    /// The anchor's fields do not give its hash: the anchor was edited.
    HashMismatch,
    /// `prev_hash` is not the previous anchor's hash: an anchor before it was removed or replaced.
    BrokenLink,
    /// Sequences are not consecutive: an anchor is missing.
    SequenceGap {
        /// The sequence that should be here.
        expected: u64,
    },
}

impl fmt::Display for AnchorBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnchorBreak::HashMismatch => {
                f.write_str("its fields do not give its hash (the anchor was edited)")
            }
            AnchorBreak::BrokenLink => f.write_str(
                "its prev_hash is not the previous anchor's hash (an anchor was replaced)",
            ),
            AnchorBreak::SequenceGap { expected } => {
                write!(f, "anchor #{expected} is missing")
            }
        }
    }
}

/// Walks a run of anchors in sequence order; returns each anchor with what is wrong with it.
/// The first anchor's `prev_hash` is taken as given unless it is anchor #1, so a file that holds
/// only the newest anchors still verifies.
pub fn check_anchor_chain(anchors: &[Anchor]) -> Vec<(u64, AnchorBreak)> {
    let mut breaks = Vec::new();
    let mut previous: Option<&Anchor> = None;
    for anchor in anchors {
        if anchor.computed_hash() != anchor.hash {
            breaks.push((anchor.sequence, AnchorBreak::HashMismatch));
        } else if let Some(previous) = previous {
            if anchor.sequence != previous.sequence + 1 {
                breaks.push((
                    anchor.sequence,
                    AnchorBreak::SequenceGap {
                        expected: previous.sequence + 1,
                    },
                ));
            } else if anchor.prev_hash != previous.hash {
                breaks.push((anchor.sequence, AnchorBreak::BrokenLink));
            }
        } else if anchor.sequence == 1 && anchor.prev_hash != GENESIS {
            breaks.push((anchor.sequence, AnchorBreak::BrokenLink));
        }
        previous = Some(anchor);
    }
    breaks
}
