//! The read models and their runtime against a real PostgreSQL: one file per property.
//! Shared set-up for these tests lives in `projections/support.rs`.

// Random histories, projections, folds, and driving projectors to the end of the log.
pub(crate) mod support;
// For random histories across many runs and tenants, the read model equals the fold of the log.
mod fold;
// A rebuild produces exactly the incrementally built rows; operator rebuilds and cancelling.
mod rebuild;
// A failure injected at every statement boundary of every batch, then a restart: as a clean build.
mod crash;
// Eight writers with late commits and rollbacks while a projector runs live: each event once.
mod concurrency;
// A rebuild under live writes: readers of the views never fail nor see a half-built table.
mod live_rebuild;
// Two projectors on two pools: one leads, the other takes over when it stops.
mod leadership;
// A changed DDL (a fixture) is rebuilt side by side at start and then serves.
mod schema_change;
// The notification feed: who is notified, the texts, deterministic ids, read state over rebuilds.
mod notifications;
// A poison event halts the projection visibly; skipping it moves on.
mod poison;
// Read-your-writes: has_passed and the bounded wait.
mod read_your_writes;
// A filter checked on a row in memory (live lists) agrees with its query's WHERE.
mod filter_in_memory;
