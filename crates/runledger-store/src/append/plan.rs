//! What each append of a group comes to, decided against one read of the heads: an answer now
//! (a replay, a conflict, a dedupe hit), a write, or a wait for the next group.
//!
//! Pure: the writer reads, this decides, the writer writes. Appends are taken in arrival order,
//! so several appends to one run in one group chain: the second is checked against, and hashed
//! from, the head the first leaves. An answer is only given from what the read saw committed;
//! an append whose outcome hangs on another append of the same group that has not committed yet
//! (its run's head, a dedupe slot, or event ids that two appends share) waits for the next group.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use runledger_core::identity::canonical_json;
use runledger_core::{EventId, RunEvent, RunId, TenantId};
use uuid::Uuid;

use super::statement::{EventColumns, GroupKeys, GroupRead, RunColumns};
use super::{AppendOutcome, Appended};
use crate::chain::{GENESIS, HashedFields, event_hash};
use crate::error::StoreError;
use crate::schema::RecordedEvent;

/// How often an append goes back to the queue after losing a race it can resolve by itself (a
/// head moved or a slot taken between the read and the write) before it answers `Conflict`.
pub(super) const MAX_ATTEMPTS: u32 = 8;

/// An event ready to be written: its stored columns, computed by the appending task.
#[derive(Debug, Clone)]
pub(super) struct PreparedEvent {
    pub(super) event_id: EventId,
    pub(super) event_type: &'static str,
    pub(super) schema_version: i32,
    pub(super) payload: serde_json::Value,
    pub(super) metadata: serde_json::Value,
}

/// One append waiting in the writer's queue.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) tenant: TenantId,
    pub(super) run: RunId,
    pub(super) expected: u64,
    pub(super) events: Vec<PreparedEvent>,
    /// The identity hash of the `Queued` among the events, which takes the run's dedupe slot
    /// (none when the same append also completes the run: it never becomes active).
    pub(super) takes_slot: Option<String>,
    /// Whether a `Completed` among the events frees the run's dedupe slot.
    pub(super) frees_slot: bool,
    /// How many writes of this append lost a race so far.
    pub(super) attempts: u32,
    /// Set when a write of this append was sent and its connection was lost before the answer:
    /// its events are stored exactly when the next read finds them.
    pub(super) uncertain: bool,
}

impl Pending {
    pub(super) fn new(
        tenant: TenantId,
        run: RunId,
        expected: u64,
        events: &[super::NewEvent],
    ) -> Self {
        let takes_slot = events.iter().find_map(|e| match &e.event {
            RunEvent::Queued(q) => Some(q.run_identity_hash.to_hex()),
            _ => None,
        });
        let frees_slot = events
            .iter()
            .any(|e| matches!(e.event, RunEvent::Completed(_)));
        Self {
            tenant,
            run,
            expected,
            events: events
                .iter()
                .map(|new| PreparedEvent {
                    event_id: new.event_id,
                    event_type: new.event.event_type(),
                    schema_version: new.event.schema_version(),
                    payload: new.event.payload(),
                    metadata: new.metadata.to_json(),
                })
                .collect(),
            takes_slot: takes_slot.filter(|_| !frees_slot),
            frees_slot,
            attempts: 0,
            uncertain: false,
        }
    }

    fn event_ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.events.iter().map(|e| e.event_id.as_uuid())
    }
}

/// What one group read needs to look up.
pub(super) fn keys<'a>(members: impl IntoIterator<Item = &'a Pending>) -> GroupKeys {
    let mut keys = GroupKeys::default();
    for member in members {
        keys.run_ids.push(member.run.as_uuid());
        keys.event_ids.extend(member.event_ids());
        if let Some(identity) = &member.takes_slot {
            keys.slot_tenants.push(member.tenant.get());
            keys.slot_identities.push(identity.clone());
        }
    }
    keys.run_ids.sort_unstable();
    keys.run_ids.dedup();
    keys
}

/// What becomes of one member of the group.
#[derive(Debug)]
pub(super) enum Fate {
    /// Its outcome is known now.
    Answer(Result<AppendOutcome, StoreError>),
    /// It waits for the next group.
    Wait,
    /// It is written, with the run write of [`Plan::writes`] that lists it.
    Write,
}

/// One run's part of the group write: the members that append to it, in order.
#[derive(Debug)]
pub(super) struct RunWrite {
    pub(super) run: RunId,
    /// The version of its first event: the write returns it exactly when the run landed.
    pub(super) first_version: i64,
    pub(super) members: Vec<usize>,
}

/// The group's decisions: one fate per member, and the write that carries the accepted ones.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub(super) fates: Vec<Fate>,
    pub(super) writes: Vec<RunWrite>,
    pub(super) runs: RunColumns,
    pub(super) events: EventColumns,
}

/// A run's head as the group sees it: as read, or as an earlier member of the group leaves it.
#[derive(Debug, Clone, Copy)]
struct Head {
    tenant: Option<i64>,
    version: u64,
    hash: [u8; 32],
    /// The stored head hash is not 32 bytes: nothing can chain from it.
    corrupt: bool,
    /// The run write of this group that moves it, if any.
    write: Option<usize>,
}

/// Decides every member of a group, in order, against `read` and the `stored` events it found.
pub(super) fn plan(members: &[&Pending], read: &GroupRead, stored: &[RecordedEvent]) -> Plan {
    let mut heads: HashMap<Uuid, Head> = HashMap::new();
    for (run, tenant, version, hash) in read.heads() {
        heads.insert(
            run,
            Head {
                tenant: Some(tenant),
                version: version.unsigned_abs(),
                hash: hash.try_into().unwrap_or(GENESIS),
                corrupt: hash.len() != 32,
                write: None,
            },
        );
    }
    let slots: HashMap<(i64, &str), Uuid> = read
        .slot_tenants
        .iter()
        .zip(&read.slot_identities)
        .zip(&read.slot_runs)
        .map(|((tenant, identity), run)| ((*tenant, identity.as_str()), *run))
        .collect();
    let stored_ids: HashSet<Uuid> = read.stored_ids.iter().copied().collect();
    let stored: HashMap<Uuid, &RecordedEvent> =
        stored.iter().map(|e| (e.event_id.as_uuid(), e)).collect();

    let mut plan = Plan::default();
    let mut claimed_ids: HashSet<Uuid> = HashSet::new();
    let mut claimed_slots: HashSet<(i64, &str)> = HashSet::new();
    for (index, member) in members.iter().enumerate() {
        let fate = decide(
            member,
            read.now,
            &mut Decisions {
                heads: &mut heads,
                slots: &slots,
                stored_ids: &stored_ids,
                stored: &stored,
                claimed_ids: &mut claimed_ids,
                claimed_slots: &mut claimed_slots,
            },
            &mut plan,
            index,
        );
        plan.fates.push(fate);
    }
    plan
}

/// The group's state while its members are decided one by one.
struct Decisions<'a, 'r> {
    heads: &'a mut HashMap<Uuid, Head>,
    slots: &'a HashMap<(i64, &'r str), Uuid>,
    stored_ids: &'a HashSet<Uuid>,
    stored: &'a HashMap<Uuid, &'r RecordedEvent>,
    /// Event ids an earlier member of this group writes.
    claimed_ids: &'a mut HashSet<Uuid>,
    /// Dedupe slots an earlier member of this group takes.
    claimed_slots: &'a mut HashSet<(i64, &'r str)>,
}

fn decide<'r>(
    member: &'r Pending,
    recorded_at: DateTime<Utc>,
    group: &mut Decisions<'_, 'r>,
    plan: &mut Plan,
    index: usize,
) -> Fate {
    if member.event_ids().any(|id| group.claimed_ids.contains(&id)) {
        return Fate::Wait;
    }
    if member.event_ids().any(|id| group.stored_ids.contains(&id)) {
        let outcome = replay(member, group.stored).map(|mut appended| {
            // Found after a write whose answer was lost: that write stored them, not an
            // earlier send.
            appended.replayed = !member.uncertain;
            AppendOutcome::Appended(appended)
        });
        return Fate::Answer(outcome);
    }
    let run = member.run.as_uuid();
    let head = group.heads.get(&run).copied().unwrap_or(Head {
        tenant: None,
        version: 0,
        hash: GENESIS,
        corrupt: false,
        write: None,
    });
    let conflict = || {
        Fate::Answer(Err(StoreError::Conflict {
            run: member.run,
            expected: member.expected,
            actual: head.version,
        }))
    };
    let foreign = head.tenant.is_some_and(|t| t != member.tenant.get());
    if head.version != member.expected || foreign {
        // A head that an earlier member of this group moves is not committed yet.
        return if head.write.is_some() {
            Fate::Wait
        } else {
            conflict()
        };
    }
    if member.attempts >= MAX_ATTEMPTS {
        // An uncertain write not found yet may still be running on the lost connection.
        return if member.uncertain {
            Fate::Answer(Err(StoreError::OutcomeUnknown))
        } else {
            conflict()
        };
    }
    if head.corrupt {
        return Fate::Answer(Err(StoreError::InvalidAppend(
            "stored stream head hash is corrupt",
        )));
    }
    let slot = member
        .takes_slot
        .as_deref()
        .filter(|_| member.expected == 0)
        .map(|identity| (member.tenant.get(), identity));
    if let Some(key) = slot {
        if group.claimed_slots.contains(&key) {
            return Fate::Wait;
        }
        if let Some(holder) = group.slots.get(&key)
            && *holder != run
        {
            return Fate::Answer(Ok(AppendOutcome::Deduplicated {
                existing: (*holder).into(),
            }));
        }
        group.claimed_slots.insert(key);
    }
    group.claimed_ids.extend(member.event_ids());

    let last_hash = push_events(member, head.hash, recorded_at, &mut plan.events);
    let new_version = member.expected + member.events.len() as u64;
    let write = match head.write {
        Some(write) => {
            let columns = &mut plan.runs;
            columns.to_versions[write] = to_i64(new_version);
            columns.last_hashes[write] = last_hash.to_vec();
            if member.frees_slot {
                if columns.from_versions[write] == 0 {
                    // The run is created by this same group: it never becomes active.
                    columns.slots[write] = None;
                } else {
                    columns.frees[write] = true;
                }
            }
            plan.writes[write].members.push(index);
            write
        }
        None => {
            let columns = &mut plan.runs;
            columns.run_ids.push(run);
            columns.tenant_ids.push(member.tenant.get());
            columns.from_versions.push(to_i64(member.expected));
            columns.to_versions.push(to_i64(new_version));
            columns.last_hashes.push(last_hash.to_vec());
            columns
                .slots
                .push(slot.map(|(_, identity)| identity.to_owned()));
            columns.frees.push(member.expected > 0 && member.frees_slot);
            plan.writes.push(RunWrite {
                run: member.run,
                first_version: to_i64(member.expected + 1),
                members: vec![index],
            });
            plan.writes.len() - 1
        }
    };
    group.heads.insert(
        run,
        Head {
            tenant: Some(member.tenant.get()),
            version: new_version,
            hash: last_hash,
            corrupt: false,
            write: Some(write),
        },
    );
    Fate::Write
}

/// Appends `member`'s events to the group's columns: versions follow its expected version,
/// hashes chain from `prev_hash`, all recorded at the group's database time. Returns the new
/// head hash.
fn push_events(
    member: &Pending,
    mut prev_hash: [u8; 32],
    recorded_at: DateTime<Utc>,
    columns: &mut EventColumns,
) -> [u8; 32] {
    for (offset, event) in (1u64..).zip(&member.events) {
        let version = member.expected + offset;
        let hash = event_hash(
            &prev_hash,
            &HashedFields {
                event_id: event.event_id.as_uuid(),
                run_id: member.run.as_uuid(),
                tenant_id: member.tenant.get(),
                version,
                event_type: event.event_type,
                schema_version: event.schema_version,
                payload: &event.payload,
                metadata: &event.metadata,
                recorded_at,
            },
        );
        columns.event_ids.push(event.event_id.as_uuid());
        columns.tenant_ids.push(member.tenant.get());
        columns.run_ids.push(member.run.as_uuid());
        columns.versions.push(to_i64(version));
        columns.event_types.push(event.event_type);
        columns.schema_versions.push(event.schema_version);
        columns.payloads.push(event.payload.clone());
        columns.metadata.push(event.metadata.clone());
        columns.prev_hashes.push(prev_hash.to_vec());
        columns.hashes.push(hash.to_vec());
        prev_hash = hash;
    }
    prev_hash
}

/// The original result of a re-sent append, if every event id is stored with the same content
/// for the same run.
fn replay(
    member: &Pending,
    stored: &HashMap<Uuid, &RecordedEvent>,
) -> Result<Appended, StoreError> {
    let mut positions = Vec::with_capacity(member.events.len());
    let mut version = 0;
    for new in &member.events {
        let id = new.event_id.as_uuid();
        let same = stored.get(&id).filter(|s| {
            s.run_id == member.run
                && s.event_type == new.event_type
                && canonical_json(&s.payload) == canonical_json(&new.payload)
        });
        let Some(same) = same else {
            return Err(StoreError::IdempotencyMismatch { event_id: id });
        };
        positions.push(same.position);
        version = version.max(same.version);
    }
    Ok(Appended {
        positions,
        version,
        replayed: true,
    })
}

/// Versions are checked to fit when an append is accepted ([`super::validate`]).
fn to_i64(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}
