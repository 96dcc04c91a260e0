//! Evidence for auditors: verify the ledger's hash chains and anchors, export the log so that it
//! verifies offline, and fold a run's state as of any version or time.
//!
//! Everything here works from the database or from an export file with no database at all, and
//! streams: a verification holds one chain head per run (and one digest per tenant), never the
//! log; an export holds one batch. This crate never appends events; its only writes are to the
//! append-only `anchors` and `verifications` tables. It reads the log with the store's
//! [`EventReader`]: walks up to a fixed horizon, with the next batch read ahead
//! ([`runledger_store::LogWalk`]), never with SQL of its own.
//!
//! [`EventReader`]: runledger_store::EventReader
//!
//! # Layout
//! - [`format`](mod@format): the export format: header, [`AuditEvent`] lines (also the audit
//!   routes' JSON), end line; scopes and bounds.
//! - [`verify`]: the [`Verifier`], and verifying the database, one run, or an export file.
//! - [`anchor`]: anchors: digests of the log up to a cursor ([`anchor::LogDigest`]), the anchor
//!   and its chain ([`Anchor`]), the `anchors` table, and the anchoring schedule.
//! - [`export`]: the NDJSON export as a stream of chunks.
//! - [`file`](mod@file): reading export and anchor files.
//! - `parallel`: per-event work spread over every core.
//! - [`replay`]: a run's state as of a version or a time.
//! - [`status`]: recorded verifications and the audit status.
//! - [`error`]: the [`AuditError`] type.

pub mod anchor;
pub mod error;
pub mod export;
pub mod file;
pub mod format;
mod parallel;
pub mod replay;
pub mod status;
pub mod verify;

pub use anchor::{Anchor, AnchorPolicy, record_anchor, run_anchoring};
pub use error::AuditError;
pub use format::{AuditEvent, LogBound, Scope};
pub use replay::{PointInTime, ReplayError, StateAt, state_at};
pub use verify::{Anchors, Report, RunFailure, Target, Verifier, verify_database, verify_export};

/// How many events one read of the log fetches, for the walks of verifications, exports and
/// anchors.
pub(crate) const LOG_BATCH: u32 = 2000;
