//! What operators and the API ask of a projection: its status (version, checkpoint, lag,
//! state, rebuild progress), and whether it has passed a position (read-your-writes).

use std::time::{Duration, Instant};

use chrono::Utc;
use runledger_store::{EventReader, LogCursor};
use sqlx::PgPool;

use crate::error::Result;
use crate::projector::leadership::is_led;
use crate::registry::{self, ProjectionVersion, VersionRow, VersionStatus, version_columns};

/// The state of a projection, as its status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionState {
    /// A projector leads it and it is not halted.
    Running,
    /// A new version is being built beside the active one (which keeps serving).
    Rebuilding,
    /// The active version is stopped at a poison event until an operator skips it.
    Halted,
    /// No projector leads it right now: reads are served, but fall behind.
    Stopped,
}

impl ProjectionState {
    /// The name shown to operators.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProjectionState::Running => "running",
            ProjectionState::Rebuilding => "rebuilding",
            ProjectionState::Halted => "halted",
            ProjectionState::Stopped => "stopped",
        }
    }
}

/// How far one version has read the log.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionProgress {
    /// The version.
    pub version: ProjectionVersion,
    /// Committed events after its checkpoint.
    pub lag_events: i64,
    /// Seconds since the first of them (in log order) was recorded (0 when there is none).
    pub lag_seconds: f64,
    /// Whether a projector holds this version's leader lock.
    pub led: bool,
}

/// A rebuild's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildProgress {
    /// The building version and its lag.
    pub progress: VersionProgress,
    /// Applied events over applied plus remaining ones, 0 to 100.
    pub percent: f64,
    /// Events applied per second since the rebuild began.
    pub events_per_second: f64,
    /// Seconds left at that rate, when it is known.
    pub eta_seconds: Option<f64>,
}

/// Everything an operator asks about one projection.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionStatus {
    /// The projection.
    pub name: String,
    /// Running, rebuilding, halted or stopped.
    pub state: ProjectionState,
    /// The active version (the one the public views show), its checkpoint and lag.
    pub active: VersionProgress,
    /// The rebuild under way, if any.
    pub rebuild: Option<RebuildProgress>,
    /// The latest error of a live version (a poison event's).
    pub last_error: Option<String>,
}

impl ProjectionStatus {
    /// The active version's checkpoint.
    pub fn checkpoint(&self) -> LogCursor {
        self.active.version.checkpoint
    }
}

/// The status of every installed projection, by name.
///
/// # Errors
/// [`crate::ProjectionError::Database`] when the database fails.
pub async fn statuses(pool: &PgPool) -> Result<Vec<ProjectionStatus>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT projection FROM projection_versions WHERE status = 'active' ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let mut all = Vec::with_capacity(names.len());
    for name in names {
        all.extend(status(pool, &name).await?);
    }
    Ok(all)
}

/// The status of `projection`, or `None` when it has no active version yet.
///
/// # Errors
/// [`crate::ProjectionError::Database`] when the database fails.
pub async fn status(pool: &PgPool, projection: &str) -> Result<Option<ProjectionStatus>> {
    let rows: Vec<VersionRow> = sqlx::query_as(concat!(
        "SELECT ",
        version_columns!(),
        " FROM projection_versions WHERE projection = $1 AND status IN ('active', 'building') \
         ORDER BY id"
    ))
    .bind(projection)
    .fetch_all(pool)
    .await?;
    let mut active = None;
    let mut building = None;
    for version in rows.into_iter().map(ProjectionVersion::from) {
        let progress = progress(pool, version).await?;
        match progress.version.status {
            VersionStatus::Active => active = Some(progress),
            _ => building = Some(progress),
        }
    }
    let Some(active) = active else {
        return Ok(None);
    };
    let last_error = building
        .iter()
        .chain([&active])
        .find_map(|p| p.version.last_error.clone());
    let state = if active.version.halted_position.is_some() {
        ProjectionState::Halted
    } else if building.is_some() {
        ProjectionState::Rebuilding
    } else if active.led {
        ProjectionState::Running
    } else {
        ProjectionState::Stopped
    };
    let rebuild = building.map(|progress| {
        let applied = progress.version.events_applied as f64;
        let remaining = progress.lag_events as f64;
        let elapsed = (Utc::now() - progress.version.created_at)
            .to_std()
            .unwrap_or_default()
            .as_secs_f64();
        let events_per_second = if elapsed > 0.0 {
            applied / elapsed
        } else {
            0.0
        };
        RebuildProgress {
            percent: if applied + remaining > 0.0 {
                100.0 * applied / (applied + remaining)
            } else {
                100.0
            },
            eta_seconds: (events_per_second > 0.0).then(|| remaining / events_per_second),
            events_per_second,
            progress,
        }
    });
    Ok(Some(ProjectionStatus {
        name: projection.to_owned(),
        state,
        active,
        rebuild,
        last_error,
    }))
}

async fn progress(pool: &PgPool, version: ProjectionVersion) -> Result<VersionProgress> {
    let lag = EventReader::new(pool.clone())
        .lag(version.checkpoint)
        .await?;
    let led = is_led(pool, &version).await?;
    let lag_seconds = lag.first_recorded_at.map_or(0.0, |first| {
        (Utc::now() - first)
            .to_std()
            .unwrap_or_default()
            .as_secs_f64()
    });
    Ok(VersionProgress {
        version,
        lag_events: i64::try_from(lag.events).unwrap_or(i64::MAX),
        lag_seconds,
        led,
    })
}

/// Whether the active version of `projection` has applied (or skipped) the event at
/// `position`: the position a command returned. False for a position no committed event has.
///
/// # Errors
/// [`crate::ProjectionError::Database`] or [`crate::ProjectionError::Store`] when the database
/// fails.
pub async fn has_passed(pool: &PgPool, projection: &str, position: i64) -> Result<bool> {
    match EventReader::new(pool.clone()).cursor_of(position).await? {
        Some(event) => has_passed_cursor(pool, projection, event).await,
        None => Ok(false),
    }
}

/// Whether the active version of `projection` has applied (or skipped) the event at `event`.
async fn has_passed_cursor(pool: &PgPool, projection: &str, event: LogCursor) -> Result<bool> {
    Ok(registry::active_checkpoint(pool, projection)
        .await?
        .is_some_and(|checkpoint| event <= checkpoint))
}

/// How often [`wait_until_passed`] looks again.
const PASSED_POLL: Duration = Duration::from_millis(10);

/// Waits, at most `timeout`, until [`has_passed`] is true; returns whether it became true.
///
/// # Errors
/// [`crate::ProjectionError::Database`] when the database fails.
pub async fn wait_until_passed(
    pool: &PgPool,
    projection: &str,
    position: i64,
    timeout: Duration,
) -> Result<bool> {
    let reader = EventReader::new(pool.clone());
    let deadline = Instant::now() + timeout;
    // An event's place in the log never changes: once found, only the checkpoint is looked at.
    let mut event = None;
    loop {
        if event.is_none() {
            event = reader.cursor_of(position).await?;
        }
        if let Some(event) = event
            && has_passed_cursor(pool, projection, event).await?
        {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(PASSED_POLL.min(deadline - now)).await;
    }
}
