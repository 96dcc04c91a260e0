//! The run domain of runledger: what a run is, which commands it accepts and which events it records.
//!
//! A run is a long-running operation of a tenant (an inventory sync, a restore, a backup).
//! Its whole history is a stream of events: `Queued`, `Started`, `Progressed`, `CancelRequested`,
//! `Completed`.
//! [`decide`] holds every business rule: it turns a command and the current state into new events
//! or a [`RunRejection`]. [`evolve`] folds one event into the state and holds no rules, so that
//! replaying stored history can never fail. [`replay`] is the fold over a whole stream.
//!
//! This crate is pure: it does no IO, never reads the clock and never generates random ids.
//! Time and ids arrive inside commands.
//!
//! # Layout
//! - [`ids`]: tenant, user, run and event identifiers.
//! - [`run_type`]: the run type taxonomy (`inventory.sync`).
//! - [`identity`]: the run identity and its deterministic SHA-256 hash (the dedupe key).
//! - [`initiator`]: who started a run (a user, or "System").
//! - [`status`]: the status and outcome enums of the seed, with display labels.
//! - [`counts`]: summary counts, progress increments and final counts.
//! - [`limits`]: lifecycle limits (start deadline, run deadline, heartbeat timeout).
//! - [`worker`]: the id a worker starts a run under.
//! - [`failure`]: failure summary entries, their sanitizing and merging.
//! - [`event`]: the events, their stored type names and payload schema versions.
//! - [`command`]: the commands.
//! - [`run`]: the state, `decide`, `evolve` and `replay`, and when a run's limits pass.
//! - [`operation_run`]: the seed's OperationRun JSON of a run's state.
//! - [`view_url`](mod@view_url): the address of a run's page.
//! - [`error`]: rejections and parse errors.
//! - [`clock`]: the [`Clock`] seam time enters through, and a [`ManualClock`] for tests.

pub mod clock;
pub mod command;
pub mod counts;
pub mod error;
pub mod event;
pub mod failure;
pub mod identity;
pub mod ids;
pub mod initiator;
pub mod limits;
pub mod operation_run;
pub mod run;
pub mod run_type;
pub mod status;
pub mod view_url;
pub mod worker;

pub use clock::{Clock, ManualClock};
pub use command::{
    Cancel, CommandKind, Complete, DispatchFailed, QueueRun, ReportProgress, RunCommand, Start,
    TimeOut,
};
pub use counts::{ProgressDelta, SummaryCounts};
pub use error::{ParseError, RunRejection};
pub use event::{
    CompletionReason, LimitPassed, RunCancelRequested, RunCompleted, RunEvent, RunProgressed,
    RunQueued, RunStarted,
};
pub use failure::{FailureCode, FailureEntry, FailureReport};
pub use identity::{RunIdentity, RunIdentityHash};
pub use ids::{EventId, RunId, TenantId, UserId};
pub use initiator::Initiator;
pub use limits::{Deadline, Limit, LimitSeconds, RunLimits};
pub use run::{Run, RunSnapshot, decide, evolve, replay};
pub use run_type::RunType;
pub use status::{Outcome, RunStatus};
pub use view_url::view_url;
pub use worker::WorkerId;
