//! The Postgres event store of runledger: the only code that writes events.
//!
//! Appends are optimistic (the caller states the version it expects), idempotent on event ids,
//! hash-chained per run, and write the inline dedupe index in the same statement. Readers read
//! one run's stream, or the whole log in a safe order that never skips an event committed late.
//!
//! The write side ([`EventWriter`]) and the read side ([`EventReader`]) are separate handles, so
//! code that should only read (the HTTP queries, projections, the auditor) cannot append. The
//! store is also the only code that reads `events`: every other crate reads the log through
//! [`EventReader`] (one stream, the log in safe order, a [`LogWalk`], [`tail`]), never with SQL
//! of its own.
//!
//! # Layout
//! - [`schema`]: the stored event envelope, metadata, and decoding with upcasting.
//! - [`chain`]: the per-run SHA-256 hash chain and its verification.
//! - [`append`]: the write side, [`EventWriter::append`], group-committed by one writer task.
//! - [`read`]: [`EventReader`]: one stream, or the log in safe order from a [`LogCursor`];
//!   counts and probes of the log, each answered from its indexes.
//! - [`walk`]: [`LogWalk`]: the log batch by batch with the next batch read ahead, up to a
//!   [`Horizon`] or on as it grows (projectors, the tail, verifications, exports, anchors).
//! - [`hub`]: [`LogHub`], the process's one listener (`LISTEN/NOTIFY` with a polling fallback)
//!   and one follower of the log, fanned out to every live reader of the process.
//! - [`tail`]: a live stream of the log for one reader on its own, through a hub of its own.
//! - [`dedupe`]: rebuilding the inline dedupe index (`active_runs`) from the log.
//! - [`command`]: the command path: load, decide, append, retry on conflicts; a decision of no
//!   events answers the run unchanged.
//! - [`heartbeat`]: each run's last heartbeat, kept beside the log, never in it.
//! - [`lease`]: [`Lease`], one leader per named leadership across processes, lapsing when it
//!   stops renewing, and its [`Fence`], checked where a leader's work commits.
//! - [`error`]: [`StoreError`] and [`CommandError`].

pub mod append;
pub mod chain;
pub mod command;
pub mod dedupe;
pub mod error;
pub mod heartbeat;
pub mod hub;
pub mod lease;
pub mod read;
pub mod schema;
pub mod tail;
pub mod walk;

pub use append::{AppendOutcome, EventWriter, NewEvent, WriterConfig, WriterStats};
pub use command::{CommandHandler, CommandOutcome, CommandRequest, ExpectedVersion};
pub use dedupe::{DedupeRebuild, rebuild_dedupe_index};
pub use error::{CommandError, StoreError, connection_lost};
pub use heartbeat::{Heartbeat, HeartbeatError};
pub use hub::{HubConfig, LogHub, Notice};
pub use lease::{DEFAULT_LEASE_DURATION, Fence, Lease, LeaseBid};
pub use read::{EventReader, Lag, LogCursor};
pub use schema::{EventMetadata, RecordedEvent};
pub use walk::{Horizon, LogWalk};

/// The event store's schema history (`migrations/`), embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The `NOTIFY` channel appends signal after they commit. A notification is a wake-up hint with
/// an empty payload: listeners re-read the log from their cursor.
pub const EVENTS_CHANNEL: &str = "runledger_events";
