//! The system clock: where the time of this process's commands enters (docs/ARCHITECTURE.md,
//! "Time"). `serve` hands it to the API, and the run subcommands stamp their commands with it.

use chrono::{DateTime, Utc};
use runledger_core::Clock;

/// The machine's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
