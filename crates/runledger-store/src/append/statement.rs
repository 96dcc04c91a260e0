//! The SQL of a group commit: one read of the heads and the clock, one atomic write.
//!
//! Both statements run on the writer's own connection, whose session turns sequential scans off
//! ([`WRITER_SESSION`]): every statement here is a keyed lookup or an insert, for which a
//! sequential scan is never the right plan once the tables are large, and a generic plan chosen
//! while a table was small is kept by the statement cache however large the table grows (issue
//! 12 measured 120 M tuples read by such a plan). With the setting in force before the first
//! statement is prepared, no cached plan can scan `events`, `streams` or `active_runs`
//! (tests/it/store/plans.rs checks it with generic plans forced, on a small and a large log).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::EVENTS_CHANNEL;
use crate::read::{EventRow, event_columns};

/// The session settings of the writer's connection, sent once when it connects; it also returns
/// the connection's server process id.
///
/// `plan_cache_mode = force_generic_plan`: each statement is planned once, not at every call. By
/// default PostgreSQL replans a prepared statement with its parameter values while that looks
/// cheaper than its generic plan, which for the write (whose `unnest` sizes a custom plan knows)
/// is always: planning that statement cost more than executing it for a lone append. With
/// sequential scans off, the one generic plan is the index plan.
pub const WRITER_SESSION: &str = "SELECT set_config('enable_seqscan', 'off', false), \
     set_config('plan_cache_mode', 'force_generic_plan', false), pg_backend_pid()";

/// Step 1 of a group: the database clock (every event of the group is recorded at it), the
/// heads of the group's runs, which of the group's event ids are stored, and who holds the dedupe
/// slots its `Queued` events ask for.
///
/// `$1` run ids; `$2` event ids; `$3`, `$4` the (tenant, identity hash) pairs of the slots.
pub const READ_GROUP: &str = "\
SELECT now() AS now,
       heads.run_ids, heads.tenant_ids, heads.versions, heads.last_hashes,
       ARRAY(SELECT event_id FROM events WHERE event_id = ANY($2::uuid[])) AS stored_ids,
       slots.slot_tenants, slots.slot_identities, slots.slot_runs
FROM (SELECT COALESCE(array_agg(run_id), '{}') AS run_ids,
             COALESCE(array_agg(tenant_id), '{}') AS tenant_ids,
             COALESCE(array_agg(version), '{}') AS versions,
             COALESCE(array_agg(last_hash), '{}') AS last_hashes
      FROM streams WHERE run_id = ANY($1::uuid[])) AS heads,
     (SELECT COALESCE(array_agg(a.tenant_id), '{}') AS slot_tenants,
             COALESCE(array_agg(a.run_identity_hash), '{}') AS slot_identities,
             COALESCE(array_agg(a.run_id), '{}') AS slot_runs
      FROM unnest($3::bigint[], $4::text[]) AS wanted(tenant_id, identity)
      JOIN active_runs a
        ON a.tenant_id = wanted.tenant_id AND a.run_identity_hash = wanted.identity) AS slots";

/// The stored events with the given ids, to answer re-sent appends with their first result.
pub const READ_STORED: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE event_id = ANY($1::uuid[])"
);

/// Step 2 of a group: for every run the group writes, move its head (compare-and-set from the
/// version read, or create it with its dedupe slot), and insert the events of the runs whose head
/// moved, in group order; then one `NOTIFY` for the whole group, sent at its commit.
///
/// Slots are taken in key order, so two lanes' groups that want the same slots wait for one
/// another's commit in one order and never deadlock.
/// A run whose compare-and-set or slot fails writes nothing, and the others are not affected;
/// the statement returns the events it inserted, so the writer knows which runs landed.
/// Runs: `$1` id, `$2` tenant, `$3` version read (0: create), `$4` new version, `$5` new head hash,
/// `$6` dedupe slot to take (NULL: none), `$7` frees its slot. Events: `$8` recorded at, `$9`…`$18`
/// their columns, in group order. `$19` the channel. `$20`: when `$8` is the writer's estimate of
/// the database clock rather than a time it read this group, how far behind the database's
/// `now()` it may be; a time outside `[now() - $20, now()]` writes nothing (NULL: no check).
/// Each returned row carries the write's `now()`, which keeps the writer's estimate current.
pub const WRITE_GROUP: &str = "\
WITH runs AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[],
                         $6::text[], $7::boolean[])
             AS r(run_id, tenant_id, from_version, to_version, last_hash, slot, frees)
    WHERE $20::interval IS NULL OR $8::timestamptz BETWEEN now() - $20::interval AND now()
), slots AS (
    INSERT INTO active_runs (tenant_id, run_identity_hash, run_id)
    SELECT tenant_id, slot, run_id FROM runs WHERE from_version = 0 AND slot IS NOT NULL
    ORDER BY tenant_id, slot
    ON CONFLICT DO NOTHING
    RETURNING run_id
), created AS (
    INSERT INTO streams (run_id, tenant_id, version, last_hash)
    SELECT run_id, tenant_id, to_version, last_hash FROM runs
    WHERE from_version = 0 AND (slot IS NULL OR run_id IN (SELECT run_id FROM slots))
    RETURNING run_id
), moved AS (
    UPDATE streams s SET version = r.to_version, last_hash = r.last_hash
    FROM runs r
    WHERE r.from_version > 0 AND s.run_id = r.run_id AND s.tenant_id = r.tenant_id
      AND s.version = r.from_version
    RETURNING s.run_id
), freed AS (
    DELETE FROM active_runs a USING runs r
    WHERE r.frees AND a.run_id = r.run_id AND r.run_id IN (SELECT run_id FROM moved)
), appended AS (
    INSERT INTO events (event_id, tenant_id, run_id, version, event_type, schema_version,
                        payload, metadata, recorded_at, prev_hash, hash)
    SELECT e.event_id, e.tenant_id, e.run_id, e.version, e.event_type, e.schema_version,
           e.payload, e.metadata, $8::timestamptz, e.prev_hash, e.hash
    FROM unnest($9::uuid[], $10::bigint[], $11::uuid[], $12::bigint[], $13::text[], $14::int[],
                $15::jsonb[], $16::jsonb[], $17::bytea[], $18::bytea[]) WITH ORDINALITY
         AS e(event_id, tenant_id, run_id, version, event_type, schema_version, payload,
              metadata, prev_hash, hash, ordinal)
    WHERE e.run_id IN (SELECT run_id FROM created UNION ALL SELECT run_id FROM moved)
    ORDER BY e.ordinal
    RETURNING run_id, version, position
), woken AS (
    SELECT pg_notify($19::text, '') FROM (SELECT 1 FROM appended LIMIT 1) AS any_appended
)
SELECT run_id, version, position, now() AS now
FROM appended, (SELECT count(*) FROM woken) AS notified";

/// Every statement the writer runs, by name: what the plan test checks.
pub const WRITER_STATEMENTS: [(&str, &str); 3] = [
    ("read_group", READ_GROUP),
    ("read_stored", READ_STORED),
    ("write_group", WRITE_GROUP),
];

/// What step 1 reads, as it comes from the database.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct GroupRead {
    pub(super) now: DateTime<Utc>,
    pub(super) run_ids: Vec<Uuid>,
    pub(super) tenant_ids: Vec<i64>,
    pub(super) versions: Vec<i64>,
    pub(super) last_hashes: Vec<Vec<u8>>,
    pub(super) stored_ids: Vec<Uuid>,
    pub(super) slot_tenants: Vec<i64>,
    pub(super) slot_identities: Vec<String>,
    pub(super) slot_runs: Vec<Uuid>,
}

impl GroupRead {
    /// The heads read: run id, tenant, version and head hash of each.
    pub(super) fn heads(&self) -> impl Iterator<Item = (Uuid, i64, i64, &[u8])> {
        self.run_ids
            .iter()
            .zip(&self.tenant_ids)
            .zip(&self.versions)
            .zip(&self.last_hashes)
            .map(|(((run, tenant), version), hash)| (*run, *tenant, *version, hash.as_slice()))
    }
}

/// The keys step 1 looks up.
#[derive(Debug, Default)]
pub(super) struct GroupKeys {
    pub(super) run_ids: Vec<Uuid>,
    pub(super) event_ids: Vec<Uuid>,
    pub(super) slot_tenants: Vec<i64>,
    pub(super) slot_identities: Vec<String>,
}

pub(super) async fn read_group(
    conn: &mut PgConnection,
    keys: &GroupKeys,
) -> Result<GroupRead, sqlx::Error> {
    // `fetch_all`, like every statement of the writer: it reads the reply up to
    // ReadyForQuery, so a statement is only taken as done once its transaction has ended.
    let mut rows: Vec<GroupRead> = sqlx::query_as(READ_GROUP)
        .bind(&keys.run_ids)
        .bind(&keys.event_ids)
        .bind(&keys.slot_tenants)
        .bind(&keys.slot_identities)
        .fetch_all(conn)
        .await?;
    rows.pop()
        .ok_or_else(|| sqlx::Error::Protocol("the group read returned no row".to_owned()))
}

pub(super) async fn read_stored(
    conn: &mut PgConnection,
    event_ids: &[Uuid],
) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as(READ_STORED)
        .bind(event_ids)
        .fetch_all(conn)
        .await
}

/// The columns of the run heads a group writes, as Postgres arrays for one `unnest`.
#[derive(Debug, Default)]
pub(super) struct RunColumns {
    pub(super) run_ids: Vec<Uuid>,
    pub(super) tenant_ids: Vec<i64>,
    pub(super) from_versions: Vec<i64>,
    pub(super) to_versions: Vec<i64>,
    pub(super) last_hashes: Vec<Vec<u8>>,
    pub(super) slots: Vec<Option<String>>,
    pub(super) frees: Vec<bool>,
}

/// The columns of the events a group inserts, in group order.
#[derive(Debug, Default)]
pub(super) struct EventColumns {
    pub(super) event_ids: Vec<Uuid>,
    pub(super) tenant_ids: Vec<i64>,
    pub(super) run_ids: Vec<Uuid>,
    pub(super) versions: Vec<i64>,
    pub(super) event_types: Vec<&'static str>,
    pub(super) schema_versions: Vec<i32>,
    pub(super) payloads: Vec<serde_json::Value>,
    pub(super) metadata: Vec<serde_json::Value>,
    pub(super) prev_hashes: Vec<Vec<u8>>,
    pub(super) hashes: Vec<Vec<u8>>,
}

/// An event the write inserted.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub(super) struct Inserted {
    pub(super) run_id: Uuid,
    pub(super) version: i64,
    pub(super) position: i64,
    /// The database clock at the write.
    pub(super) now: DateTime<Utc>,
}

pub(super) async fn write_group(
    conn: &mut PgConnection,
    runs: &RunColumns,
    recorded_at: DateTime<Utc>,
    estimate_bound: Option<std::time::Duration>,
    events: &EventColumns,
) -> Result<Vec<Inserted>, sqlx::Error> {
    sqlx::query_as(WRITE_GROUP)
        .bind(&runs.run_ids)
        .bind(&runs.tenant_ids)
        .bind(&runs.from_versions)
        .bind(&runs.to_versions)
        .bind(&runs.last_hashes)
        .bind(&runs.slots)
        .bind(&runs.frees)
        .bind(recorded_at)
        .bind(&events.event_ids)
        .bind(&events.tenant_ids)
        .bind(&events.run_ids)
        .bind(&events.versions)
        .bind(&events.event_types)
        .bind(&events.schema_versions)
        .bind(&events.payloads)
        .bind(&events.metadata)
        .bind(&events.prev_hashes)
        .bind(&events.hashes)
        .bind(EVENTS_CHANNEL)
        .bind(
            estimate_bound
                .map(sqlx::postgres::types::PgInterval::try_from)
                .transpose()
                .map_err(sqlx::Error::Encode)?,
        )
        .fetch_all(conn)
        .await
}
