//! A replica's replay lag in time, from write-ahead-log positions only: how long ago the primary
//! had written something the replica has not replayed yet. No clock of either server is read,
//! so clock skew between the hosts cannot make a replica look early or late.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The most primary positions remembered while a replica stays behind (at one probe every
/// 500 ms, over an hour): past it no new one is kept, which only keeps the lag measured from
/// the oldest ones, still a true lower bound.
const MAX_SAMPLES: usize = 8192;

/// The primary's write-ahead-log positions, each with when it was read, that a replica has not
/// replayed yet (oldest first).
#[derive(Debug, Default)]
pub(crate) struct LagMeter {
    ahead: VecDeque<(i64, Instant)>,
}

impl LagMeter {
    /// Takes the primary's current position `lsn`, read at `at`.
    pub(crate) fn primary_at(&mut self, lsn: i64, at: Instant) {
        let newer = self.ahead.back().is_none_or(|(last, _)| lsn > *last);
        if newer && self.ahead.len() < MAX_SAMPLES {
            self.ahead.push_back((lsn, at));
        }
    }

    /// The lag of a replica that has replayed up to `replayed`, at `now`: zero when it has
    /// replayed every position taken, else the age of the oldest one it has not (it misses
    /// something the primary had then, so it is at least that far behind).
    pub(crate) fn lag(&mut self, replayed: i64, now: Instant) -> Duration {
        while self.ahead.front().is_some_and(|(lsn, _)| *lsn <= replayed) {
            self.ahead.pop_front();
        }
        self.ahead
            .front()
            .map_or(Duration::ZERO, |(_, at)| now.saturating_duration_since(*at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_that_replayed_every_position_has_no_lag() {
        let start = Instant::now();
        let mut meter = LagMeter::default();
        meter.primary_at(100, start);
        meter.primary_at(200, start + Duration::from_secs(1));
        assert_eq!(
            meter.lag(200, start + Duration::from_secs(9)),
            Duration::ZERO
        );
        assert_eq!(
            meter.lag(250, start + Duration::from_secs(9)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_replica_behind_lags_by_the_age_of_the_oldest_position_it_misses() {
        let start = Instant::now();
        let mut meter = LagMeter::default();
        meter.primary_at(100, start);
        meter.primary_at(200, start + Duration::from_secs(2));
        meter.primary_at(300, start + Duration::from_secs(4));
        let now = start + Duration::from_secs(5);
        assert_eq!(meter.lag(50, now), Duration::from_secs(5));
        assert_eq!(meter.lag(150, now), Duration::from_secs(3));
        // Once passed, a position is forgotten: the replica never looks further behind again.
        assert_eq!(meter.lag(50, now), Duration::from_secs(3));
        assert_eq!(meter.lag(300, now), Duration::ZERO);
    }

    #[test]
    fn an_idle_primary_adds_no_position() {
        let start = Instant::now();
        let mut meter = LagMeter::default();
        meter.primary_at(100, start);
        meter.primary_at(100, start + Duration::from_secs(3));
        assert_eq!(
            meter.lag(99, start + Duration::from_secs(4)),
            Duration::from_secs(4)
        );
    }
}
