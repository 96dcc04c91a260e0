//! The command path: load a run, decide with the domain, append, and retry lost races.
//!
//! Commands that do not pin a version are retried on a version conflict: the run is re-read and
//! the command decided again against the new state. So concurrent progress reports from many
//! workers all land, each exactly once, and their counts add up exactly; and of a time-out and
//! a completion decided against the same version, one appends and the other, decided again
//! against the completed run, is refused: nothing is ever overwritten.
//!
//! A decision with no events (a worker starting again the run it started, a second cancel) is
//! an answer too: the command path appends nothing and answers the run as it stands.
//!
//! A run the handler decided a command for lately is remembered (`command/recent.rs`): its
//! next command is decided from that memory and appended at once, without reading the stream
//! first (one round trip instead of two). Whenever the append does not confirm the memory
//! (the run moved: a conflict; the command is a re-send: its event ids are stored), or the
//! memory's decision is not an append (a refusal, no events, another pinned version), the
//! command is decided again from the stream, exactly as if nothing had been remembered.

use std::time::Duration;

use runledger_core::{
    EventId, Run, RunCommand, RunId, RunRejection, RunSnapshot, TenantId, decide, evolve,
};
use uuid::Uuid;

use crate::append::{AppendOutcome, EventWriter, NewEvent};
use crate::error::{CommandError, StoreError};
use crate::read::EventReader;
use crate::schema::{EventMetadata, RecordedEvent};
use recent::RecentRuns;

mod recent;

/// The version a command expects its run to be at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Whatever it is now: lost races are retried against the new state.
    Any,
    /// Exactly this version (HTTP `If-Match`): a moved run is a conflict, never retried.
    Exact(u64),
}

/// A command addressed to one run of one tenant.
#[derive(Debug, Clone)]
pub struct CommandRequest {
    /// The tenant the caller acts for.
    pub tenant_id: TenantId,
    /// The run.
    pub run_id: RunId,
    /// What to do.
    pub command: RunCommand,
    /// The version the caller expects.
    pub expected: ExpectedVersion,
    /// The id of the (first) event the command appends. Re-sending a command with the same id
    /// returns the first result instead of appending again.
    pub event_id: EventId,
    /// Who and what caused it.
    pub metadata: EventMetadata,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandOutcome {
    /// The command's events are stored; this is the run after them.
    Applied {
        /// The run as of the command's last event.
        run: Box<RunSnapshot>,
        /// The global position of the command's last event.
        position: i64,
        /// True when an earlier send of the same event id had stored them already.
        replayed: bool,
    },
    /// A `Queue` whose tenant and identity already have an active run: that run, unchanged.
    Deduplicated {
        /// The active run with the same identity, as currently stored.
        existing: Box<RunSnapshot>,
    },
    /// The command's effect was already recorded (the domain decided no events): nothing was
    /// appended, and this is the run as it stands.
    Unchanged {
        /// The run as of its latest event.
        run: Box<RunSnapshot>,
        /// The global position of the run's latest event (what a read-your-writes query waits
        /// for to see this state).
        position: i64,
    },
}

impl CommandOutcome {
    /// The run the outcome answers with: after the command, the active duplicate, or as it
    /// stands.
    pub fn run(&self) -> &RunSnapshot {
        match self {
            CommandOutcome::Applied { run, .. } | CommandOutcome::Unchanged { run, .. } => run,
            CommandOutcome::Deduplicated { existing } => existing,
        }
    }
}

/// Runs commands against the store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CommandHandler {
    reader: EventReader,
    writer: EventWriter,
    recent: RecentRuns,
}

/// How many times an unpinned command re-decides after losing a race before giving up.
const MAX_ATTEMPTS: u32 = 200;

impl CommandHandler {
    /// A command handler over the store's two handles.
    pub fn new(reader: EventReader, writer: EventWriter) -> Self {
        Self {
            reader,
            writer,
            recent: RecentRuns::new(),
        }
    }

    /// Loads the run, decides, appends; retries lost races unless the version is pinned.
    ///
    /// # Errors
    /// [`CommandError::Rejected`] when a domain rule refuses the command;
    /// [`CommandError::Conflict`] when a pinned version is stale (or retries ran out);
    /// [`CommandError::Store`] when the store fails.
    #[tracing::instrument(skip_all, fields(tenant = %request.tenant_id, run = %request.run_id, command = %request.command.kind()))]
    pub async fn execute(&self, request: &CommandRequest) -> Result<CommandOutcome, CommandError> {
        let outcome = match self.execute_from_memory(request).await? {
            Some(outcome) => outcome,
            None => self.execute_from_stream(request).await?,
        };
        match &outcome {
            CommandOutcome::Applied { run, .. } | CommandOutcome::Unchanged { run, .. } => {
                self.recent.remember(run);
            }
            CommandOutcome::Deduplicated { .. } => {}
        }
        Ok(outcome)
    }

    /// Decides the command against the run as remembered and appends at that version: the
    /// outcome when the append confirms the memory, `None` when the command must be decided
    /// from the stream instead (nothing remembered, or the memory could not be trusted).
    async fn execute_from_memory(
        &self,
        request: &CommandRequest,
    ) -> Result<Option<CommandOutcome>, CommandError> {
        let Some(remembered) = self.recent.get(request.tenant_id, request.run_id) else {
            return Ok(None);
        };
        let state = Run::Exists(Box::new(remembered));
        if matches!(request.expected, ExpectedVersion::Exact(expected) if expected != state.version())
        {
            // The memory may be the stale one: only the stream can say the pin is.
            return Ok(None);
        }
        // A refusal or a decision of no events may be a re-send's (its run has moved on since
        // its first send): the stream answers those, with the first send's result.
        let Ok(events) = decide(&state, request.command.clone()) else {
            return Ok(None);
        };
        if events.is_empty() {
            return Ok(None);
        }
        let events = new_events(request, events);
        let expected = state.version();
        let appended = self
            .writer
            .append(request.tenant_id, request.run_id, expected, &events)
            .await;
        match appended {
            Ok(AppendOutcome::Appended(appended)) if !appended.replayed => {
                let run = events
                    .iter()
                    .fold(state, |run, new| evolve(run, &new.event));
                applied(run, appended.last_position(), false).map(Some)
            }
            // Moved (a conflict), a re-send (stored ids: replayed, or stored with the payload
            // of a decision against an older state), or a queue: the stream decides.
            Ok(_)
            | Err(StoreError::Conflict { .. })
            | Err(StoreError::IdempotencyMismatch { .. }) => {
                self.recent.forget(request.tenant_id, request.run_id);
                Ok(None)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Reads the run's stream, decides, appends; retries lost races unless the version is
    /// pinned.
    async fn execute_from_stream(
        &self,
        request: &CommandRequest,
    ) -> Result<CommandOutcome, CommandError> {
        let mut attempt = 0;
        // The run as folded so far: a retry reads and folds only the events that landed since.
        let mut state = Run::Unqueued;
        // The position of the latest event folded.
        let mut last_position = 0;
        loop {
            attempt += 1;
            let newer = self
                .reader
                .read_stream_after(request.tenant_id, request.run_id, state.version())
                .await?;
            if let Some(original) = newer.iter().find(|e| e.event_id == request.event_id) {
                let upto = newer.iter().take_while(|e| e.version <= original.version);
                let run = fold_onto(state, upto)?;
                return applied(run, original.position, true);
            }
            if attempt > 1 && state.version() == 0 && newer.is_empty() {
                // A queue at version 0 lost its compare-and-set, yet this tenant still has no
                // such run: the id is another tenant's. It answers as taken, exactly like an id
                // this tenant already used, and is never retried.
                return Err(CommandError::Rejected(RunRejection::AlreadyExists {
                    run_id: request.run_id,
                }));
            }
            last_position = newer.last().map_or(last_position, |e| e.position);
            state = fold_onto(state, &newer)?;
            if let ExpectedVersion::Exact(expected) = request.expected
                && expected != state.version()
            {
                return Err(CommandError::Conflict {
                    run: request.run_id,
                    expected,
                    actual: state.version(),
                });
            }
            let events = new_events(request, decide(&state, request.command.clone())?);
            if events.is_empty() {
                return match state {
                    Run::Exists(run) => Ok(CommandOutcome::Unchanged {
                        run,
                        position: last_position,
                    }),
                    Run::Unqueued => Err(CommandError::Rejected(RunRejection::NotFound)),
                };
            }
            let expected = state.version();
            match self
                .writer
                .append(request.tenant_id, request.run_id, expected, &events)
                .await
            {
                Ok(AppendOutcome::Appended(appended)) => {
                    let run = events
                        .iter()
                        .fold(state, |run, new| evolve(run, &new.event));
                    return applied(run, appended.last_position(), appended.replayed);
                }
                Ok(AppendOutcome::Deduplicated { existing }) => {
                    let stored = self.reader.read_stream(request.tenant_id, existing).await?;
                    match fold(&stored)? {
                        Run::Exists(existing) => {
                            return Ok(CommandOutcome::Deduplicated { existing });
                        }
                        // Unreachable unless the active run belongs to another tenant: decide again.
                        Run::Unqueued => continue,
                    }
                }
                Err(StoreError::Conflict { .. })
                    if request.expected == ExpectedVersion::Any && attempt < MAX_ATTEMPTS =>
                {
                    tokio::time::sleep(backoff(attempt, request.event_id)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The run as its stored events fold, or `None` when the tenant has no such run.
    ///
    /// # Errors
    /// [`StoreError`] when reading or decoding fails.
    pub async fn load(
        &self,
        tenant: TenantId,
        run: RunId,
    ) -> Result<Option<RunSnapshot>, StoreError> {
        Ok(self
            .load_with_position(tenant, run)
            .await?
            .map(|(run, _)| run))
    }

    /// The run as its stored events fold, with the position of its latest event.
    pub(crate) async fn load_with_position(
        &self,
        tenant: TenantId,
        run: RunId,
    ) -> Result<Option<(RunSnapshot, i64)>, StoreError> {
        let stored = self.reader.read_stream(tenant, run).await?;
        let position = stored.last().map(|event| event.position);
        Ok(match (fold(&stored)?, position) {
            (Run::Exists(run), Some(position)) => Some((*run, position)),
            _ => None,
        })
    }

    /// The database of the store (for the tables beside the log: heartbeats).
    pub(crate) fn pool(&self) -> &sqlx::PgPool {
        &self.reader.pool
    }
}

fn applied(run: Run, position: i64, replayed: bool) -> Result<CommandOutcome, CommandError> {
    match run {
        Run::Exists(run) => Ok(CommandOutcome::Applied {
            run,
            position,
            replayed,
        }),
        Run::Unqueued => Err(CommandError::Rejected(RunRejection::NotFound)),
    }
}

/// Folds stored events onto a state with the domain's `evolve`.
fn fold_onto<'a>(
    state: Run,
    stored: impl IntoIterator<Item = &'a RecordedEvent>,
) -> Result<Run, StoreError> {
    stored
        .into_iter()
        .try_fold(state, |run, event| Ok(evolve(run, &event.decode()?)))
}

/// Folds stored events with the domain's `evolve`.
///
/// # Errors
/// [`StoreError::Decode`] when an event does not decode.
pub fn fold(stored: &[RecordedEvent]) -> Result<Run, StoreError> {
    fold_onto(Run::Unqueued, stored)
}

/// Folds stored events up to and including `version`.
///
/// # Errors
/// [`StoreError::Decode`] when an event does not decode.
pub fn fold_until(stored: &[RecordedEvent], version: u64) -> Result<Run, StoreError> {
    let upto = stored.iter().take_while(|e| e.version <= version).count();
    fold(&stored[..upto])
}

/// The events a command decided, with their ids: the request's id, then ids derived from it.
fn new_events(request: &CommandRequest, decided: Vec<runledger_core::RunEvent>) -> Vec<NewEvent> {
    decided
        .into_iter()
        .enumerate()
        .map(|(index, event)| NewEvent {
            event_id: nth_event_id(request.event_id, index),
            event,
            metadata: request.metadata.clone(),
        })
        .collect()
}

/// The id of a command's `index`th event: the request's id, then ids derived from it, so that a
/// re-sent command maps to the same ids.
fn nth_event_id(first: EventId, index: usize) -> EventId {
    if index == 0 {
        first
    } else {
        EventId::from_uuid(Uuid::new_v5(&first.as_uuid(), &index.to_be_bytes()))
    }
}

/// A short, growing pause with per-request spread, so racing workers do not retry in lockstep.
fn backoff(attempt: u32, event_id: EventId) -> Duration {
    let spread = u64::from(event_id.as_uuid().as_bytes()[15]) * 4;
    let base = u64::from(attempt.min(20)) * 500;
    Duration::from_micros(base + spread)
}
