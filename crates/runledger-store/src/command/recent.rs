//! The command path's memory of the runs it decided lately, so that the next command to a run
//! can be decided without reading the run's stream first.
//!
//! What is remembered is only a guess of the run's state: the append's compare-and-set of the
//! run's head is what decides. A run that moved since (another process, a sweeper, a lost race)
//! fails the compare-and-set and the command is decided again from the stream; a re-sent
//! command is recognised by its event ids before any version is checked. So a stale or missing
//! entry costs one read, never a wrong answer (docs/adr/0016, "Deciding from memory").

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use runledger_core::{RunId, RunSnapshot, TenantId};

/// The most runs remembered at once (each a few hundred bytes to a few KiB); the least
/// recently used is forgotten first.
const REMEMBERED_RUNS: NonZeroUsize = NonZeroUsize::new(4096).unwrap();

/// Recently decided runs of one command handler and its clones, keyed by tenant and run.
#[derive(Debug, Clone)]
pub(super) struct RecentRuns {
    runs: Arc<Mutex<LruCache<(TenantId, RunId), RunSnapshot>>>,
}

impl RecentRuns {
    pub(super) fn new() -> Self {
        Self {
            runs: Arc::new(Mutex::new(LruCache::new(REMEMBERED_RUNS))),
        }
    }

    /// The run of `tenant` as last remembered.
    pub(super) fn get(&self, tenant: TenantId, run: RunId) -> Option<RunSnapshot> {
        self.lock().get(&(tenant, run)).cloned()
    }

    /// Remembers `snapshot` as the run's state (of its tenant).
    pub(super) fn remember(&self, snapshot: &RunSnapshot) {
        self.lock()
            .put((snapshot.tenant_id, snapshot.id), snapshot.clone());
    }

    /// Forgets the run: what was remembered of it turned out stale.
    pub(super) fn forget(&self, tenant: TenantId, run: RunId) {
        self.lock().pop(&(tenant, run));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<(TenantId, RunId), RunSnapshot>> {
        // The map holds no invariant a panicking holder could break.
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
