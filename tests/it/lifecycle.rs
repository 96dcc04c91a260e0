//! Runs that never finish and runs that must stop (issue 13), end to end through the real router,
//! the store and the sweeper, on a clock the tests move. One file per property.
//! Shared set-up for these tests lives in `lifecycle/support.rs`.

// A lab: the API on a manual clock, a writer's verbs, the sweeper stepped at the clock's time.
pub(crate) mod support;
// Each limit fires at its bound and not before; heartbeats keep a run alive; defaults apply.
mod limits;
// The heartbeat route: beside the log, refused for queued and completed runs, tenant-scoped.
mod heartbeat;
// Cancellation: a queued run ends at once; a running one's worker sees it and acknowledges.
mod cancel;
// Re-delivery: the same worker's start is idempotent, another's is 409; complete with counts.
mod redelivery;
// A sweeper racing 20 completes and cancels per run: exactly one Completed each.
mod race;
// A rebuild of the read model and the feed after time-outs and cancellations equals the
// incremental build; the read model's lifecycle fields are the fold of the log.
mod rebuild;
// Run ids chosen by the caller, or derived from an Idempotency-Key.
mod run_ids;
