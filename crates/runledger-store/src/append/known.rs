//! What a writer lane knows without reading: the heads of the runs it read or wrote lately, and
//! the database clock as its last round trip told it, moved on by the lane's monotonic clock.
//!
//! With it, a group whose runs are all known (or new) is written at once, without the group read
//! (docs/adr/0016, "Writing without a read"). Knowledge is only a guess: the write's
//! compare-and-sets, its constraints and its clock check decide. A known head that another
//! process moved fails its compare-and-set, a taken dedupe slot or a stored event id leaves the
//! run unwritten or fails the statement, and an estimate of the clock outside the bound writes
//! nothing; every append so refused goes back to the queue and is decided again after a read. So
//! what the lane knows can cost a round trip, never a wrong answer.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use lru::LruCache;
use tokio::time::Instant;
use uuid::Uuid;

use super::plan::Pending;
use super::statement::GroupRead;

/// The most run heads a lane keeps (under a hundred bytes each); the least recently used go
/// first.
const KNOWN_HEADS: NonZeroUsize = NonZeroUsize::new(4096).unwrap();

/// How far behind the database's `now()` an estimated `recorded_at` may be when the write
/// checks it; it is never ahead. An estimate lags by about one round trip; one further behind
/// (the lane waited on a slow write, the clocks drifted) writes nothing and is read again.
pub(super) const ESTIMATE_BOUND: Duration = Duration::from_millis(250);

/// A run's head as the lane last read or wrote it.
#[derive(Debug, Clone)]
struct KnownHead {
    tenant: i64,
    version: i64,
    hash: Vec<u8>,
}

/// One lane's knowledge.
#[derive(Debug)]
pub(super) struct Known {
    heads: LruCache<Uuid, KnownHead>,
    /// The database clock at a round trip's statement, and when its answer came.
    clock: Option<(DateTime<Utc>, Instant)>,
}

impl Known {
    pub(super) fn new() -> Self {
        Self {
            heads: LruCache::new(KNOWN_HEADS),
            clock: None,
        }
    }

    /// Forgets everything: the lane has a new connection, perhaps to another server (a promoted
    /// standby may lack the last commits, and has a clock of its own).
    pub(super) fn forget_all(&mut self) {
        self.heads.clear();
        self.clock = None;
    }

    /// The database clock was `now` at a statement whose answer has just come.
    pub(super) fn saw_clock(&mut self, now: DateTime<Utc>) {
        self.clock = Some((now, Instant::now()));
    }

    /// The run is at `version` with head `hash`, in `tenant`.
    pub(super) fn saw_head(&mut self, run: Uuid, tenant: i64, version: i64, hash: &[u8]) {
        self.heads.put(
            run,
            KnownHead {
                tenant,
                version,
                hash: hash.to_vec(),
            },
        );
    }

    /// What the lane knew of the run was wrong, or is now unknown.
    pub(super) fn forget(&mut self, run: Uuid) {
        self.heads.pop(&run);
    }

    /// Learns the clock and the heads a group read returned.
    pub(super) fn saw_read(&mut self, read: &GroupRead) {
        self.saw_clock(read.now);
        for (run, tenant, version, hash) in read.heads() {
            self.saw_head(run, tenant, version, hash);
        }
    }

    /// What stands in for the group read of `members` when the lane knows enough to write them
    /// at once: the estimated clock and the known heads, with no stored ids and no taken slots
    /// (the write's constraints find those). `None` when a member must be decided after a read:
    /// it lost a race or an answer before, or its run's first append in the group expects a
    /// head the lane does not know.
    pub(super) fn read_for(&mut self, members: &[&Pending]) -> Option<GroupRead> {
        let (at, answered) = self.clock?;
        let elapsed = chrono::Duration::from_std(answered.elapsed()).ok()?;
        let mut read = GroupRead {
            // Stored with microseconds, as the hash formats it.
            now: (at + elapsed).trunc_subsecs(6),
            run_ids: Vec::new(),
            tenant_ids: Vec::new(),
            versions: Vec::new(),
            last_hashes: Vec::new(),
            stored_ids: Vec::new(),
            slot_tenants: Vec::new(),
            slot_identities: Vec::new(),
            slot_runs: Vec::new(),
        };
        let mut seen = HashSet::new();
        for member in members {
            if member.attempts > 0 || member.uncertain {
                return None;
            }
            let run = member.run.as_uuid();
            if !seen.insert(run) {
                // A later append to a run of the group: the plan chains it or lets it wait.
                continue;
            }
            match self.heads.get(&run) {
                None if member.expected == 0 => {}
                Some(head)
                    if head.tenant == member.tenant.get()
                        && head.version.unsigned_abs() == member.expected =>
                {
                    read.run_ids.push(run);
                    read.tenant_ids.push(head.tenant);
                    read.versions.push(head.version);
                    read.last_hashes.push(head.hash.clone());
                }
                _ => return None,
            }
        }
        Some(read)
    }
}
