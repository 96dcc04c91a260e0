//! The clock a process reads time from: the one way the time of a command enters the system.
//!
//! The core itself never reads a clock (time arrives in commands); it only names the seam. Each
//! binary provides the system clock at its composition root, and tests provide a
//! [`ManualClock`], which moves only when told, so that a test of a deadline can step over it
//! exactly.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Where the time of commands comes from.
pub trait Clock: std::fmt::Debug + Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// A clock that moves only when told (and, if asked, by a fixed step at each reading).
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<ManualState>,
}

#[derive(Debug)]
struct ManualState {
    now: DateTime<Utc>,
    step: Duration,
}

impl ManualClock {
    /// A clock standing at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self::stepping(now, Duration::zero())
    }

    /// A clock at `start` that moves on by `step` after each reading: no two readings are equal.
    pub fn stepping(start: DateTime<Utc>, step: Duration) -> Self {
        Self {
            state: Mutex::new(ManualState { now: start, step }),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        self.lock().now = now;
    }

    /// Moves the time on by `by`.
    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        state.now += by;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // A std mutex: the critical sections are a few instructions and never await. A panic
        // while it was held cannot leave the time half-written, so a poisoned lock is still good.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        let mut state = self.lock();
        let (now, step) = (state.now, state.step);
        state.now += step;
        now
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(seconds, 0).unwrap()
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(at(100));
        assert_eq!(clock.now(), at(100));
        assert_eq!(clock.now(), at(100));
        clock.advance(Duration::seconds(5));
        assert_eq!(clock.now(), at(105));
        clock.set(at(7));
        assert_eq!(clock.now(), at(7));
    }

    #[test]
    fn a_stepping_clock_never_reads_the_same_time_twice() {
        let clock = ManualClock::stepping(at(0), Duration::seconds(1));
        assert_eq!(
            [clock.now(), clock.now(), clock.now()],
            [at(0), at(1), at(2)]
        );
    }
}
