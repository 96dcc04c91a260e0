//! The runledger benchmarks, run by the `runledger-bench` binary (`main.rs`) against the
//! ledger's PostgreSQL server, each in a database of its own that it drops at the end, or, with
//! `--seeded NAME`, over a log `runledger-bench seed` generated once and kept.
//!
//! They live apart from the `runledger` server binary so that it carries no bench code; the
//! integration tests call the harnesses here to check that the benches measure what they say.
//! Figures, commands and targets: docs/performance.md.
//!
//! # Layout
//! - `append`: `runledger-bench append`, store appends against raw inserts.
//! - `projections`: `runledger-bench projections`, the read model's catch-up and visibility.
//! - `audit`: `runledger-bench audit`, the auditor's tools over a large log.
//! - `http`: `runledger-bench http`, the HTTP API's commands and queries.
//! - `live`: `runledger-bench live`, many live streams and what they cost everyone else.
//! - `seed`: `runledger-bench seed`, a large log generated once and kept for the others.
//! - `database`: the benches' own databases on the ledger's server, or a seeded one.
//! - `log`: the events the benches append, and the generated logs they measure over.
//! - `memory`: the process's peak memory.
//! - `percentile`: the one percentile rule of every latency figure.
//! - `server`: the real app served in the bench's process.

// A bench's results go to stdout.
#![allow(clippy::print_stdout)]

pub mod append;
pub mod audit;
mod database;
pub mod http;
pub mod live;
mod log;
mod memory;
mod percentile;
pub mod projections;
pub mod seed;
mod server;
