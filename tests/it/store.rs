//! The event store against a real PostgreSQL: one file per property.

// A run's whole lifecycle through the command path, end to end.
mod smoke;
// Optimistic concurrency: racing appends at one version, stale versions, foreign tenants.
mod occ;
// The inline dedupe index: one active run per tenant and identity, freed on completion.
mod dedupe;
// The inline dedupe index rebuilt from the log while appends go on.
mod dedupe_rebuild;
// Re-sent appends and commands (same event ids) return the first result and write nothing.
mod idempotency;
// The command path under contention: unpinned retries add up exactly; pinned versions conflict.
mod command_concurrency;
// The command path decides from memory: stale memories, re-sends and pins answer as the stream.
mod command_memory;
// Group commit: appends that share a group each keep their own outcome; lost connections.
mod group_commit;
// Writing without a read: what a lane knows wrongly costs a read, never a wrong answer.
mod unread_writes;
// The writer's connection lost mid-group: killed, its answer cut, the database out of reach.
mod lost_connection;
// A writer of several lanes: racing queues of one identity make one run; runs keep their order.
mod lanes;
// No hot statement is planned as a sequential scan of the log, on a small or a large log.
mod plans;
// Safe log order, deterministically: a reader never passes a writer that is still open.
mod ordering;
// Safe log order under stress: racing writers, late commits and rollbacks; a live tail reads all.
mod stress;
// The database refuses UPDATE, DELETE and TRUNCATE of events, to every role.
mod immutability;
// The per-run hash chain: verification, tamper detection, and a fixed vector.
mod chain;
// Every event variant and its metadata read back from the store as written.
mod roundtrip;
// Rows of older schema versions, as older code wrote them, upcast on read: same meaning, same fold.
mod upcast;
// The live tail: woken by NOTIFY, in order, per tenant.
mod tail;
