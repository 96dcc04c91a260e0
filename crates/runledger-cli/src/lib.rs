//! What the runledger binaries share: which database they use, where their logs go, the clock
//! the time of their commands comes from, and their runtime.
//!
//! The `runledger` binary (`main.rs`) and the benchmarks' binary (`runledger-bench`, in
//! `crates/runledger-bench`) open the ledger's database server alike, from the same flags and
//! environment, and log alike.
//!
//! # Layout
//! - `clock`: the system clock, where the time of a process's commands enters.
//! - `database`: `DATABASE_URL`, or the embedded PostgreSQL in `--data-dir`.
//! - `logging`: logs to stderr, filtered by `RUNLEDGER_LOG`.

pub mod clock;
pub mod database;
pub mod logging;

/// The binaries' tokio runtime: multi-threaded, with every driver (I/O, time, signals).
///
/// # Errors
/// When the operating system refuses its threads or its I/O driver.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
