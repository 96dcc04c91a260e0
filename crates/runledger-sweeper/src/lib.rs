//! The sweeper of runledger: ends the runs whose lifecycle limit has passed (a start deadline, a
//! run deadline, a heartbeat timeout) as `failed`, through the store's command path.
//!
//! One process leads the sweeper across all that share a database; it reads the time from its
//! process's clock, finds candidates in the OperationRun read model and the heartbeats beside the
//! log, and sends each a `TimeOut`, which the pure core decides against the run's events. It
//! never appends itself: it is a client of `CommandHandler`, as the API is, which is why it is a
//! crate of its own rather than part of the projections (which never append) or the API (the
//! HTTP layer). See docs/adr/0021.
//!
//! # Layout
//! - [`sweeper`]: [`Sweeper`]: a round ([`Sweeper::step`]) and the loop ([`Sweeper::run`]).
//!
//! One process leads by the store's lease `sweeper` ([`runledger_store::Lease`],
//! docs/adr/0024): a leader that stops renewing it loses it within its duration, and stops
//! sending time-outs as soon as it no longer holds it.

pub mod sweeper;

pub use sweeper::{SweepError, SweepOutcome, SweepReport, Sweeper, SweeperConfig};
