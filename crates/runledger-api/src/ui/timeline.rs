//! A run's timeline as its page shows it: one row per event, to the millisecond, each opening
//! onto the event's stored payload and metadata (a `<details>`: no script needed).

use chrono::{DateTime, Utc};
use runledger_store::RecordedEvent;

use super::times::{TimeView, duration_text};

/// One event of a run's timeline.
#[derive(Debug, Clone)]
pub struct EventView {
    pub version: u64,
    pub event_type: String,
    /// What happened, in words: `Completed · failed (dispatch failed)`.
    pub summary: String,
    pub recorded: TimeView,
    /// Since the previous event: `+1.2 s` (none for the first).
    pub since_previous: Option<String>,
    pub actor: String,
    pub position: i64,
    pub schema_version: i32,
    /// The first 12 hex digits of the event's hash.
    pub short_hash: String,
    pub hash: String,
    /// The payload as stored, pretty-printed.
    pub payload_json: String,
    /// The metadata as stored, pretty-printed.
    pub metadata_json: String,
}

impl EventView {
    /// The timeline of `events` (one run's, in version order), seen at `now`.
    pub fn timeline(events: &[RecordedEvent], now: DateTime<Utc>) -> Vec<EventView> {
        let mut previous: Option<DateTime<Utc>> = None;
        events
            .iter()
            .map(|event| {
                let since_previous =
                    previous.map(|before| format!("+{}", duration_text(before, event.recorded_at)));
                previous = Some(event.recorded_at);
                let hash = hex::encode(event.hash);
                EventView {
                    version: event.version,
                    event_type: event.event_type.clone(),
                    summary: summary(event),
                    recorded: TimeView::new(event.recorded_at, now),
                    since_previous,
                    actor: event
                        .metadata
                        .get("actor")
                        .and_then(|actor| actor.as_str())
                        .unwrap_or("unknown")
                        .to_owned(),
                    position: event.position,
                    schema_version: event.schema_version,
                    short_hash: hash[..12].to_owned(),
                    hash,
                    payload_json: pretty(&event.payload),
                    metadata_json: pretty(&event.metadata),
                }
            })
            .collect()
    }
}

/// The event in a few words: the outcome and reason of a completion, the counts of a
/// progress report, the worker of a start, the reason of a cancel request. An event this code
/// cannot decode is named by its stored type (its payload is still shown).
fn summary(event: &RecordedEvent) -> String {
    use runledger_core::{CompletionReason, RunEvent};
    let Ok(decoded) = event.decode() else {
        return event.event_type.clone();
    };
    match decoded {
        RunEvent::Queued(_) => "Queued".to_owned(),
        RunEvent::Started(started) => match started.worker {
            Some(worker) => format!("Started by worker {}", worker.as_str()),
            None => "Started".to_owned(),
        },
        RunEvent::Progressed(progress) => {
            let delta = progress.delta;
            let total = progress
                .total
                .map_or_else(String::new, |total| format!(" (total {total})"));
            format!(
                "Progress +{} ok, +{} failed, +{} skipped{total}",
                delta.success, delta.failed, delta.skipped
            )
        }
        RunEvent::CancelRequested(request) => match request.reason {
            Some(reason) => format!("Cancel requested: {reason}"),
            None => "Cancel requested".to_owned(),
        },
        RunEvent::Completed(completed) => {
            let outcome = completed.outcome.label();
            match completed.reason {
                CompletionReason::Finished => format!("Completed: {outcome}"),
                CompletionReason::DispatchFailed => {
                    format!("Completed: {outcome} (could not be dispatched)")
                }
                CompletionReason::TimedOut { time_out } => format!(
                    "Completed: {outcome} ({} passed)",
                    time_out.limit.failure_code()
                ),
                CompletionReason::Cancelled { .. } => format!("Completed: {outcome}"),
            }
        }
    }
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}
