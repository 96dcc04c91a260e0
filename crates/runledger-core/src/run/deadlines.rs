//! When a run's limits pass: instants derived from its state and its last heartbeat.
//!
//! Heartbeats are not events: the store keeps each run's last one outside the log, and callers
//! pass it in. Progress reports, which are events, count as heartbeats too, so the last heartbeat
//! is the later of the two; a run that never sent either is measured from its start.

use chrono::{DateTime, Utc};

use super::RunSnapshot;
use crate::limits::{Deadline, Limit};
use crate::status::RunStatus;

impl RunSnapshot {
    /// When the start deadline passes: queued at, plus the limit (still shown once started).
    pub fn start_deadline_at(&self) -> Option<DateTime<Utc>> {
        self.limits.start_deadline_seconds?.after(self.created_at)
    }

    /// When the run deadline passes: started at, plus the limit; `None` until started.
    pub fn run_deadline_at(&self) -> Option<DateTime<Utc>> {
        self.limits.run_deadline_seconds?.after(self.started_at?)
    }

    /// The latest heartbeat: the later of `stored` (the heartbeat kept outside the log) and the
    /// last progress report.
    pub fn last_heartbeat_at(&self, stored: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        self.last_progress_at.max(stored)
    }

    /// When the heartbeat timeout passes: the latest heartbeat, or the start when the run never
    /// sent one, plus the limit; `None` until started.
    pub fn heartbeat_deadline_at(&self, stored: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let started_at = self.started_at?;
        // A heartbeat stamped before the start (clocks differ) does not move the start back.
        let since = self
            .last_heartbeat_at(stored)
            .map_or(started_at, |last| last.max(started_at));
        self.limits.heartbeat_timeout_seconds?.after(since)
    }

    /// The limits that bind the run in its status, each with the instant it passes: the start
    /// deadline while queued; the run deadline and the heartbeat timeout while running; none
    /// once completed.
    pub fn deadlines(&self, stored_heartbeat: Option<DateTime<Utc>>) -> Vec<Deadline> {
        let binding: &[Limit] = match self.status {
            RunStatus::Queued => &[Limit::StartDeadline],
            RunStatus::Running => &[Limit::RunDeadline, Limit::HeartbeatTimeout],
            RunStatus::Completed => &[],
        };
        binding
            .iter()
            .filter_map(|&limit| {
                let seconds = self.limits.get(limit)?;
                let at = match limit {
                    Limit::StartDeadline => self.start_deadline_at(),
                    Limit::RunDeadline => self.run_deadline_at(),
                    Limit::HeartbeatTimeout => self.heartbeat_deadline_at(stored_heartbeat),
                }?;
                Some(Deadline { limit, seconds, at })
            })
            .collect()
    }

    /// The binding limit that passes first. When several have passed, this is the one a time-out
    /// records: the earliest instant, and on a tie the first in [`Limit::ALL`].
    pub fn next_deadline(&self, stored_heartbeat: Option<DateTime<Utc>>) -> Option<Deadline> {
        self.deadlines(stored_heartbeat)
            .into_iter()
            .min_by_key(|deadline| (deadline.at, deadline.limit))
    }
}
