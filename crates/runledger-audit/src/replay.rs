//! A run's state as of a version or a time: a prefix of its stored events folded with the
//! store's fold (the domain's `evolve`), the same code as the command path and the projections.
//!
//! Both the HTTP state route and `runledger replay` (from the database or an export) call
//! [`state_at`].

use chrono::{DateTime, Utc};
use runledger_core::{Run, RunSnapshot};
use runledger_store::command::fold_until;
use runledger_store::{RecordedEvent, StoreError};

/// The point of a run's history to fold to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointInTime {
    /// After its newest event.
    Latest,
    /// After the event of this version.
    Version(u64),
    /// After the last event recorded at or before this time.
    Time(DateTime<Utc>),
}

/// A run as it was at some point of its history.
#[derive(Debug, Clone, PartialEq)]
pub struct StateAt {
    /// The run's state.
    pub run: Box<RunSnapshot>,
    /// The version of the last event folded.
    pub version: u64,
    /// When that event was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// Why there is no state to show.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The run has no events (for this tenant).
    #[error("no such run")]
    NoSuchRun,
    /// No event of the run was recorded by then.
    #[error("the run had no events yet at that time")]
    NothingYet,
    /// The version is not one of the run's.
    #[error("must be between 1 and the run's version, {latest}")]
    VersionOutOfRange {
        /// The run's newest version.
        latest: u64,
    },
    /// The events do not start at version 1 (an export filtered by `since`).
    #[error(
        "the run's events start at version {first}: a state needs every event from version 1 \
         (export without --since)"
    )]
    IncompleteHistory {
        /// The first version present.
        first: u64,
    },
    /// The events fold to no run: only a missing or edited row (which verification reports)
    /// can do that.
    #[error("the events of the run do not fold to a run (verify its chain)")]
    DoesNotFold,
    /// An event does not decode.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Folds `stored` (one run's events, in version order) up to `point`.
///
/// The state is always a whole prefix of the stream, never a filtered subset, because a state
/// must fold a complete history.
///
/// # Errors
/// [`ReplayError`] when there is no such state.
pub fn state_at(stored: &[RecordedEvent], point: PointInTime) -> Result<StateAt, ReplayError> {
    let (Some(first), Some(latest)) = (stored.first(), stored.last()) else {
        return Err(ReplayError::NoSuchRun);
    };
    if first.version != 1 {
        return Err(ReplayError::IncompleteHistory {
            first: first.version,
        });
    }
    let last = match point {
        PointInTime::Latest => latest,
        PointInTime::Version(version) if (1..=latest.version).contains(&version) => stored
            .iter()
            .rfind(|event| event.version <= version)
            .ok_or(ReplayError::DoesNotFold)?,
        PointInTime::Version(_) => {
            return Err(ReplayError::VersionOutOfRange {
                latest: latest.version,
            });
        }
        // Record times grow with versions (an append reads the clock after the append before it
        // committed), so this prefix is exactly the events recorded at or before `at`.
        PointInTime::Time(at) => stored
            .iter()
            .take_while(|event| event.recorded_at <= at)
            .last()
            .ok_or(ReplayError::NothingYet)?,
    };
    let Run::Exists(run) = fold_until(stored, last.version)? else {
        return Err(ReplayError::DoesNotFold);
    };
    Ok(StateAt {
        run,
        version: last.version,
        recorded_at: last.recorded_at,
    })
}
