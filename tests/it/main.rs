//! The integration tests: the whole system against a real PostgreSQL, in one test binary.
//!
//! Every test gets its own database, cloned from a migrated template in one throwaway cluster
//! per test run (or on the server of `DATABASE_URL` when it is set). See `helpers.rs`.

// Shared set-up and domain verbs; add helpers here rather than in test modules.
mod helpers;
// The embedded cluster and test databases themselves.
mod harness;
// The event store: appends, optimistic concurrency, idempotency, dedupe, ordering, hash chains.
mod store;
// The read models: exactly-once projectors, leadership, poison events, versioned rebuilds.
mod projections;
// The HTTP API through the real router, and over real HTTP where a live connection matters.
mod api;
// The auditor's tools: verification of tampered ledgers, anchors, exports, point-in-time replay.
// (Named apart from `api/audit.rs`, which tests the audit HTTP routes.)
mod ledger_audit;
// The monitoring pages (`/ui`), through the router and in a real browser.
mod ui;
// Live updates through the process's one hub: many streams, slow clients, watches, positions.
mod live;
// The Rust client against the real router over real HTTP (retries, worker handles, dispatch),
// the token API and service tokens, and the CLI beside a running `serve`.
mod client;
// The OpenAPI document as a contract: every answer of every route conforms to it, and a Python
// client generated from it drives a run's lifecycle.
mod openapi;
// Lifecycle limits, heartbeats, the sweeper, cancellation and re-delivery (issue 13).
mod lifecycle;
// Several spawned processes on one database: leases, fencing, failover, one set of versions.
mod processes;
// Degrading fast with the database down, least privilege, rate limits and bad input (issue 10).
mod robust;
// Read replicas: queries on a real streaming standby, read-your-writes across it, skipping.
mod replica;
// Primary failover: a synchronous standby promoted under load, found by the same `serve`.
mod failover;
// The benches' harnesses: a bench measures the load it claims (N writers really at once).
mod bench;
// The source tree itself: every file opens with `//!`; only the store reads `events`.
mod tidy;
