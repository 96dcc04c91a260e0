//! What the runledger binaries share: which database they use and where their logs go.
//!
//! The `runledger` binary (`main.rs`) and the benchmarks' binary (`runledger-bench`, in
//! `crates/runledger-bench`) open the ledger's database server alike, from the same flags and
//! environment, and log alike.
//!
//! # Layout
//! - `database`: `DATABASE_URL`, or the embedded PostgreSQL in `--data-dir`.
//! - `logging`: logs to stderr, filtered by `RUNLEDGER_LOG`.

pub mod database;
pub mod logging;
