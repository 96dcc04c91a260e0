//! What operators and the API ask of a projection: its status (version, checkpoint, lag,
//! state, rebuild progress, and whether this code can lead it), and whether it has passed a
//! position (read-your-writes).

use std::time::{Duration, Instant};

use chrono::Utc;
use runledger_store::{EventReader, LogCursor};
use sqlx::PgPool;

use crate::error::Result;
use crate::projection::Definition;
use crate::projector::leadership::is_led;
use crate::published::Published;
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

/// Where the code of the process asking stands with a projection's versions: whether a process
/// running it leads the version the public views show, builds its replacement, or cannot lead
/// any (docs/adr/0025).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeStanding {
    /// This code's version is the active one.
    Active,
    /// This code's version is being built beside the active one, and replaces it once caught up.
    Building,
    /// This code's version was replaced by a newer one, or its rebuild cancelled: a process of
    /// this code applies nothing.
    Replaced {
        /// The fingerprint of the active version.
        active: String,
    },
    /// The active version's fingerprint is none this code has built: no process of this code
    /// leads it (one that runs projectors builds its own version beside it).
    Unknown {
        /// The fingerprint of the active version.
        active: String,
    },
}

impl CodeStanding {
    /// The name shown to operators.
    pub const fn as_str(&self) -> &'static str {
        match self {
            CodeStanding::Active => "active",
            CodeStanding::Building => "building",
            CodeStanding::Replaced { .. } => "replaced",
            CodeStanding::Unknown { .. } => "unknown",
        }
    }

    /// Whether a process of this code leads (or builds) a live version of the projection.
    pub const fn can_lead(&self) -> bool {
        matches!(self, CodeStanding::Active | CodeStanding::Building)
    }

    /// The error an operator is shown when this code cannot lead the projection `name` whose
    /// own fingerprint is `mine`.
    pub fn problem(&self, name: &str, mine: &str) -> Option<String> {
        let short = |fingerprint: &str| fingerprint.get(..12).unwrap_or(fingerprint).to_owned();
        match self {
            CodeStanding::Active | CodeStanding::Building => None,
            CodeStanding::Replaced { active } => Some(format!(
                "{name}: this code's version {} was replaced by {}: processes of this code apply \
                 nothing to it; run the code of the active version, or `runledger rebuild {name}` \
                 with this code to make its version active again",
                short(mine),
                short(active)
            )),
            CodeStanding::Unknown { active } => Some(format!(
                "{name}: the active version {} is not this code's ({}): no process of this code \
                 leads it; a process of this code that runs projectors builds its own version \
                 beside it",
                short(active),
                short(mine)
            )),
        }
    }
}

/// Where `definition` (this code's version of a projection) stands, given the projection's
/// active version; `None` when the projection has no active version yet.
///
/// # Errors
/// [`crate::ProjectionError::Database`] when the database fails.
pub async fn code_standing(pool: &PgPool, definition: &Definition) -> Result<Option<CodeStanding>> {
    let versions: Vec<(String, String)> =
        sqlx::query_as("SELECT fingerprint, status FROM projection_versions WHERE projection = $1")
            .bind(definition.name)
            .fetch_all(pool)
            .await?;
    let Some(active) = versions
        .iter()
        .find(|(_, status)| status == VersionStatus::Active.as_str())
        .map(|(fingerprint, _)| fingerprint.clone())
    else {
        return Ok(None);
    };
    let mine = |status: VersionStatus| {
        versions
            .iter()
            .any(|(fingerprint, s)| *fingerprint == definition.fingerprint && s == status.as_str())
    };
    Ok(Some(if mine(VersionStatus::Active) {
        CodeStanding::Active
    } else if mine(VersionStatus::Building) {
        CodeStanding::Building
    } else if versions
        .iter()
        .any(|(fingerprint, _)| *fingerprint == definition.fingerprint)
    {
        CodeStanding::Replaced { active }
    } else {
        CodeStanding::Unknown { active }
    }))
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
    /// Whether a projector holds this version's lease.
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
    /// Where the code of the process asking stands (when it asked with its definitions:
    /// [`statuses_of_code`]); an error to show when it cannot lead.
    pub this_code: Option<CodeStanding>,
    /// The fingerprint of this code's version, beside [`ProjectionStatus::this_code`].
    pub this_code_fingerprint: Option<String>,
}

impl ProjectionStatus {
    /// The active version's checkpoint.
    pub fn checkpoint(&self) -> LogCursor {
        self.active.version.checkpoint
    }

    /// The error to show when the code of the process asking cannot lead this projection.
    pub fn code_problem(&self) -> Option<String> {
        let (standing, mine) = (
            self.this_code.as_ref()?,
            self.this_code_fingerprint.as_ref()?,
        );
        standing.problem(&self.name, mine)
    }
}

/// The status of every installed projection, as [`statuses`], with where `code` (the
/// definitions of the asking process's code) stands with each one it defines.
///
/// # Errors
/// [`crate::ProjectionError::Database`] when the database fails.
pub async fn statuses_of_code(pool: &PgPool, code: &[Definition]) -> Result<Vec<ProjectionStatus>> {
    let mut all = statuses(pool).await?;
    for status in &mut all {
        if let Some(definition) = code.iter().find(|d| d.name == status.name) {
            status.this_code = code_standing(pool, definition).await?;
            status.this_code_fingerprint = Some(definition.fingerprint.clone());
        }
    }
    Ok(all)
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
        this_code: None,
        this_code_fingerprint: None,
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
        .is_some_and(|(_, checkpoint)| event <= checkpoint))
}

/// Waits, at most `timeout`, until [`has_passed`] is true; returns whether it became true.
///
/// It finds the event's place in the log once (one read), then waits on the projection's
/// position as `published` has it, without a query while it waits: it wakes when a projector
/// commits the batch (in this process at once, from another one by its notice).
///
/// # Errors
/// [`crate::ProjectionError::Database`] when the database fails.
pub async fn wait_until_passed(
    pool: &PgPool,
    published: &Published,
    projection: &str,
    position: i64,
    timeout: Duration,
) -> Result<bool> {
    let reader = EventReader::new(pool.clone());
    let deadline = Instant::now() + timeout;
    let mut applied = published.applied();
    // A position no committed event has yet: look again whenever a projection moves.
    let event = loop {
        if let Some(event) = reader.cursor_of(position).await? {
            break event;
        }
        if tokio::time::timeout_at(deadline.into(), applied.recv())
            .await
            .is_err()
        {
            return Ok(false);
        }
    };
    published
        .wait_for(
            projection,
            event,
            deadline.saturating_duration_since(Instant::now()),
        )
        .await
}
