//! The digest an anchor records: per tenant, the number of events and runs up to a cursor and a
//! rolling digest of those events' hashes in safe log order, built event by event.
//!
//! `digest = SHA-256(digest ‖ hash)`, starting from 32 zero bytes: deleting any event up to the
//! cursor (a middle one, the newest of a run, a whole run), inserting one, reordering or
//! rewriting one changes its tenant's digest.

use std::collections::BTreeMap;
use std::fmt;

use runledger_core::TenantId;
use runledger_store::chain::GENESIS;
use runledger_store::{LogCursor, RecordedEvent};
use sha2::{Digest, Sha256};

use super::Anchor;

/// One tenant's part of the log up to a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantState {
    /// How many events.
    pub events: u64,
    /// How many runs (events of version 1).
    pub runs: u64,
    /// The rolling digest of the events' hashes, in safe log order.
    pub digest: [u8; 32],
}

impl Default for TenantState {
    fn default() -> Self {
        TenantState {
            events: 0,
            runs: 0,
            digest: GENESIS,
        }
    }
}

impl TenantState {
    fn apply(&mut self, event: &RecordedEvent) {
        self.events += 1;
        if event.version == 1 {
            self.runs += 1;
        }
        let mut hasher = Sha256::new();
        hasher.update(self.digest);
        hasher.update(event.hash);
        self.digest = hasher.finalize().into();
    }
}

impl fmt::Display for TenantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events in {} runs (digest {}…)",
            self.events,
            self.runs,
            &hex::encode(self.digest)[..12]
        )
    }
}

/// Every tenant's state up to a cursor: what an anchor records, built event by event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogDigest {
    tenants: BTreeMap<TenantId, TenantState>,
    cursor: LogCursor,
}

impl LogDigest {
    /// The state an anchor records (to continue from it).
    pub fn of_anchor(anchor: &Anchor) -> Self {
        LogDigest {
            tenants: anchor
                .tenants
                .iter()
                .map(|tenant| (tenant.tenant_id, tenant.state()))
                .collect(),
            cursor: anchor.cursor,
        }
    }

    /// Adds the next event of the log.
    pub fn apply(&mut self, event: &RecordedEvent) {
        self.tenants
            .entry(event.tenant_id)
            .or_default()
            .apply(event);
        self.cursor = LogCursor::after(event);
    }

    /// The cursor of the last event applied.
    pub fn cursor(&self) -> LogCursor {
        self.cursor
    }

    /// One tenant's state (empty when it has no events yet).
    pub fn tenant(&self, tenant: TenantId) -> TenantState {
        self.tenants.get(&tenant).copied().unwrap_or_default()
    }

    /// Every tenant with events, in id order.
    pub fn tenants(&self) -> impl Iterator<Item = (TenantId, TenantState)> + '_ {
        self.tenants.iter().map(|(tenant, state)| (*tenant, *state))
    }
}
