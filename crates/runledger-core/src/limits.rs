//! Lifecycle limits of a run: how long it may wait to start, run, and go without a heartbeat.
//!
//! The limits are part of a run's contract, resolved (with the server's and the run type's
//! defaults) before the run is queued and recorded in its `Queued` event, so that an auditor sees
//! exactly which limits it ran under. Whether one has passed is decided by `decide` on a
//! `TimeOut` command, with the time in the command (docs/adr/0013).

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// The length of a limit: whole seconds, from one second to thirty days.
///
/// Thirty days bounds the longest operation a tenant runs (a full backup of a large tenant takes
/// hours, not weeks); a longer limit is no limit, and the caller should say so by giving none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct LimitSeconds(u32);

impl LimitSeconds {
    /// The shortest limit, in seconds.
    pub const MIN: u32 = 1;
    /// The longest limit, in seconds: thirty days.
    pub const MAX: u32 = 30 * 24 * 60 * 60;

    /// A limit of `seconds`, which `field` gave (for the error).
    ///
    /// # Errors
    /// [`ParseError`] naming `field` when `seconds` is not within 1 to 2,592,000.
    pub fn parse(field: &'static str, seconds: i64) -> Result<Self, ParseError> {
        match u32::try_from(seconds) {
            Ok(seconds) if (Self::MIN..=Self::MAX).contains(&seconds) => Ok(Self(seconds)),
            _ => Err(ParseError::new(
                field,
                format!(
                    "must be a whole number of seconds from {} to {} (30 days)",
                    Self::MIN,
                    Self::MAX
                ),
            )),
        }
    }

    /// The number of seconds.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The instant this long after `since`; `None` past the end of representable time.
    pub fn after(self, since: DateTime<Utc>) -> Option<DateTime<Utc>> {
        since.checked_add_signed(TimeDelta::seconds(i64::from(self.0)))
    }
}

impl TryFrom<i64> for LimitSeconds {
    type Error = ParseError;
    fn try_from(seconds: i64) -> Result<Self, ParseError> {
        Self::parse("limit_seconds", seconds)
    }
}

impl From<LimitSeconds> for i64 {
    fn from(limit: LimitSeconds) -> i64 {
        i64::from(limit.0)
    }
}

impl fmt::Display for LimitSeconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} s", self.0)
    }
}

/// Which limit: each ends a run in one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// Queued → started: how long a run may wait for a worker, from when it was queued.
    StartDeadline,
    /// Started → completed: how long a run may run, from when it started.
    RunDeadline,
    /// How long a running run may go without a heartbeat (or progress report), measured from
    /// the latest one, or from its start when it never sent one.
    HeartbeatTimeout,
}

impl Limit {
    /// Every limit, in the order that settles ties: when two pass at the same instant, the
    /// earlier one in this list is the one recorded.
    pub const ALL: [Limit; 3] = [
        Limit::StartDeadline,
        Limit::RunDeadline,
        Limit::HeartbeatTimeout,
    ];

    /// The stored name, as in the `Completed` event's `time_out.limit`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Limit::StartDeadline => "start_deadline",
            Limit::RunDeadline => "run_deadline",
            Limit::HeartbeatTimeout => "heartbeat_timeout",
        }
    }

    /// The failure code a run timed out by this limit gets in its `failure_summary`.
    pub const fn failure_code(self) -> &'static str {
        match self {
            Limit::StartDeadline => "run.start_deadline_exceeded",
            Limit::RunDeadline => "run.deadline_exceeded",
            Limit::HeartbeatTimeout => "run.heartbeat_timeout",
        }
    }

    /// The input field that sets this limit, as in the `Queued` event's `limits` and the API.
    pub const fn field(self) -> &'static str {
        match self {
            Limit::StartDeadline => "start_deadline_seconds",
            Limit::RunDeadline => "run_deadline_seconds",
            Limit::HeartbeatTimeout => "heartbeat_timeout_seconds",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The limits a run was queued with; a limit that is `None` never ends the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RunLimits {
    /// How long it may stay queued.
    pub start_deadline_seconds: Option<LimitSeconds>,
    /// How long it may run once started.
    pub run_deadline_seconds: Option<LimitSeconds>,
    /// How long it may run without a heartbeat.
    pub heartbeat_timeout_seconds: Option<LimitSeconds>,
}

impl RunLimits {
    /// Limits from whole seconds as a caller gave them (`None`: no such limit).
    ///
    /// # Errors
    /// [`ParseError`] naming the first field (`start_deadline_seconds`, …) out of bounds.
    pub fn from_seconds(
        start_deadline: Option<i64>,
        run_deadline: Option<i64>,
        heartbeat_timeout: Option<i64>,
    ) -> Result<Self, ParseError> {
        let parse = |limit: Limit, seconds: Option<i64>| {
            seconds
                .map(|s| LimitSeconds::parse(limit.field(), s))
                .transpose()
        };
        Ok(Self {
            start_deadline_seconds: parse(Limit::StartDeadline, start_deadline)?,
            run_deadline_seconds: parse(Limit::RunDeadline, run_deadline)?,
            heartbeat_timeout_seconds: parse(Limit::HeartbeatTimeout, heartbeat_timeout)?,
        })
    }

    /// The length of one limit, when the run has it.
    pub const fn get(&self, limit: Limit) -> Option<LimitSeconds> {
        match limit {
            Limit::StartDeadline => self.start_deadline_seconds,
            Limit::RunDeadline => self.run_deadline_seconds,
            Limit::HeartbeatTimeout => self.heartbeat_timeout_seconds,
        }
    }
}

/// A limit of a run and the instant it passes (or passed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// Which limit.
    pub limit: Limit,
    /// Its length.
    pub seconds: LimitSeconds,
    /// The instant it passes: a run is overdue at this instant, not a nanosecond before.
    pub at: DateTime<Utc>,
}
