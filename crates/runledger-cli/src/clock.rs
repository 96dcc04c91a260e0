//! The system clock: where the time of a process's commands enters (docs/ARCHITECTURE.md,
//! "Time"). `runledger serve` hands it to the API, the run subcommands stamp their commands
//! with it, and `runledger-bench http` hands it to the API it measures.

use chrono::{DateTime, Utc};
use runledger_core::Clock;

/// The machine's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
