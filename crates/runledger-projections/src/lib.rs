//! The read models of runledger, and the runtime that keeps them: events in, rows out, exactly
//! once.
//!
//! A projection folds the log into tables of its own. Its projector reads the log in safe order
//! from a checkpoint, and applies a batch and advances the checkpoint in one transaction. One
//! projector leads each projection across processes (a lease in the store); the others stand by. An
//! event a projection cannot apply is recorded as poison and halts it, visibly, until an operator
//! skips it.
//!
//! A projection's tables live in a Postgres schema per version, a version being a fingerprint of
//! its DDL and code version. Reads go through views in `public` that show the
//! active version. A changed definition, or an operator's rebuild, builds a new version from the
//! start of the log beside the active one, which keeps serving; once caught up, the views are
//! switched to it in one transaction (docs/adr/0006).
//!
//! This crate never appends events, and never reads `events` with SQL of its own: it reads the
//! log with the store's [`EventReader`] (a [`LogWalk`] per version, and the store's probes).
//!
//! [`EventReader`]: runledger_store::EventReader
//! [`LogWalk`]: runledger_store::LogWalk
//!
//! # Layout
//! - [`projection`]: the [`Projection`] trait, [`Definition`] and fingerprints, fail points.
//! - [`projector`]: [`Projector`]: step, catch up, run; with its leadership, batch application
//!   and poison events in files of their own.
//! - [`published`]: [`Published`] positions of each projection after every committed batch (in
//!   process and by `NOTIFY`), and [`LiveLog`], a process's hub and positions together.
//! - [`registry`]: versions and their schemas; switch, rebuild, cancel, skip.
//! - [`status`](mod@status): [`status`](status::status) and lag; [`has_passed`] for read-your-writes.
//! - [`operation_runs`]: the OperationRun read model, its rows and its queries.
//! - [`notifications`]: the notification feed and its queries.
//! - `keyset`: the keyset page condition both read models' lists share.
//! - [`runtime`]: the known projections, and running them all.
//! - [`error`]: [`ProjectionError`] and [`ApplyError`].

pub mod error;
pub(crate) mod keyset;
pub mod notifications;
pub mod operation_runs;
pub mod projection;
pub mod projector;
pub mod published;
pub mod registry;
pub mod runtime;
pub mod status;

pub use error::{ApplyError, ProjectionError};
pub use notifications::{NOTIFICATIONS, NoticeKind, Notifications, notice_id};
pub use operation_runs::{OPERATION_RUNS, OperationRunRow, OperationRuns};
pub use projection::{
    ApplyTx, Definition, FailPoint, Injected, ProjectedEvent, Projection, PublicView,
};
pub use projector::{Projector, ProjectorOptions, ProjectorStats, StepOutcome};
pub use published::{Applied, LiveLog, POSITIONS_CHANNEL, Position, Published};
pub use registry::{
    ProjectionVersion, RebuildStarted, VersionStatus, cancel_rebuild, rebuild, skip, version,
};
pub use runtime::{ProjectionsConfig, run_projectors};
pub use status::{
    CodeStanding, ProjectionState, ProjectionStatus, RebuildProgress, VersionProgress,
    code_standing, has_passed, status, statuses, statuses_of_code, wait_until_passed,
};
