//! What the templates show of a run and of its events: display labels, times, durations and the
//! progress bar, computed once here so that every page and every live update shows a run alike.

use chrono::{DateTime, SecondsFormat, Utc};
use runledger_core::{RunSnapshot, RunStatus};
use runledger_store::RecordedEvent;

/// A time, as a `<time>` element shows it.
#[derive(Debug, Clone)]
pub struct TimeView {
    /// RFC 3339, for the `datetime` attribute and for machines.
    pub machine: String,
    /// `2026-11-27 09:14:03 UTC`, for people.
    pub human: String,
}

impl TimeView {
    pub fn new(time: DateTime<Utc>) -> Self {
        Self {
            machine: time.to_rfc3339_opts(SecondsFormat::Millis, true),
            human: time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }
    }
}

/// `3 h 02 m`, `4 m 05 s`, `12.3 s` or `85 ms`: the two largest units are enough to compare runs.
pub fn duration_text(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let millis = (to - from).num_milliseconds().max(0);
    let seconds = millis / 1000;
    match seconds {
        0 => format!("{millis} ms"),
        1..60 => format!("{}.{} s", seconds, (millis % 1000) / 100),
        60..3600 => format!("{} m {:02} s", seconds / 60, seconds % 60),
        3600..86_400 => format!("{} h {:02} m", seconds / 3600, (seconds % 3600) / 60),
        _ => format!("{} d {:02} h", seconds / 86_400, (seconds % 86_400) / 3600),
    }
}

/// One segment of the progress bar, in hundredths of its width.
#[derive(Debug, Clone)]
pub struct BarSegment {
    /// `success`, `failed` or `skipped` (the CSS class).
    pub kind: &'static str,
    /// Where it starts, 0–100.
    pub x: String,
    /// How wide it is, 0–100.
    pub width: String,
}

/// The failure summary's row.
#[derive(Debug, Clone)]
pub struct FailureView {
    pub code: String,
    pub message: String,
    pub count: u64,
}

/// A run as every page shows it.
#[derive(Debug, Clone)]
pub struct RunView {
    pub id: String,
    pub tenant_id: i64,
    pub page_url: String,
    pub run_type: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub outcome: &'static str,
    pub outcome_label: &'static str,
    pub done: bool,
    pub initiator_name: String,
    pub user_id: Option<i64>,
    pub created: TimeView,
    pub started: Option<TimeView>,
    pub completed: Option<TimeView>,
    pub updated: TimeView,
    /// From queued to started.
    pub waited: Option<String>,
    /// From started to completed, or to now while it runs.
    pub ran: Option<String>,
    pub success: u64,
    pub failed: u64,
    pub skipped: u64,
    pub total: Option<u64>,
    /// `9 succeeded, 1 failed, 0 skipped of 10`: the bar's accessible name.
    pub progress_text: String,
    pub bar: Vec<BarSegment>,
    pub failures: Vec<FailureView>,
    pub identity_hash: String,
    pub identity_json: String,
    pub context_json: String,
    pub version: u64,
}

impl RunView {
    /// The view of `run`; `now` measures a run still under way.
    pub fn new(run: &RunSnapshot, page_url: String, now: DateTime<Utc>) -> Self {
        let counts = &run.summary_counts;
        let processed = counts.success + counts.failed + counts.skipped;
        // A run with no total yet fills the bar with what it has done so far.
        let whole = counts.total.unwrap_or(processed).max(processed).max(1) as f64;
        let mut x = 0.0;
        let bar = [
            ("success", counts.success),
            ("failed", counts.failed),
            ("skipped", counts.skipped),
        ]
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|(kind, count)| {
            let width = count as f64 * 100.0 / whole;
            let segment = BarSegment {
                kind,
                x: format!("{x:.2}"),
                width: format!("{width:.2}"),
            };
            x += width;
            segment
        })
        .collect();
        let of_total = counts.total.map_or_else(
            || " (total not known yet)".to_owned(),
            |t| format!(" of {t}"),
        );
        let ran_until = run.completed_at.unwrap_or(now);
        Self {
            id: run.id.to_string(),
            tenant_id: run.tenant_id.get(),
            page_url,
            run_type: run.run_type.as_str().to_owned(),
            status: run.status.as_str(),
            status_label: run.status.label(),
            outcome: run.outcome.as_str(),
            outcome_label: run.outcome.label(),
            done: !run.status.is_active(),
            initiator_name: run.initiator.name.clone(),
            user_id: run.initiator.user_id.map(|u| u.get()),
            created: TimeView::new(run.created_at),
            started: run.started_at.map(TimeView::new),
            completed: run.completed_at.map(TimeView::new),
            updated: TimeView::new(run.updated_at),
            waited: run
                .started_at
                .map(|started| duration_text(run.created_at, started)),
            ran: run
                .started_at
                .filter(|_| run.status != RunStatus::Queued)
                .map(|started| duration_text(started, ran_until)),
            success: counts.success,
            failed: counts.failed,
            skipped: counts.skipped,
            total: counts.total,
            progress_text: format!(
                "{} succeeded, {} failed, {} skipped{of_total}",
                counts.success, counts.failed, counts.skipped
            ),
            bar,
            failures: run
                .failure_summary
                .iter()
                .map(|failure| FailureView {
                    code: failure.code.as_str().to_owned(),
                    message: failure.message.clone(),
                    count: failure.count,
                })
                .collect(),
            identity_hash: run.run_identity_hash.to_hex(),
            identity_json: pretty(&run.identity),
            context_json: pretty(&run.context),
            version: run.version,
        }
    }
}

/// One line of a run's timeline.
#[derive(Debug, Clone)]
pub struct EventView {
    pub version: u64,
    pub event_type: String,
    pub recorded: TimeView,
    pub actor: String,
    pub position: i64,
    /// The first 12 hex digits of the event's hash.
    pub short_hash: String,
    pub hash: String,
}

impl From<&RecordedEvent> for EventView {
    fn from(event: &RecordedEvent) -> Self {
        let hash = hex::encode(event.hash);
        Self {
            version: event.version,
            event_type: event.event_type.clone(),
            recorded: TimeView::new(event.recorded_at),
            actor: event
                .metadata
                .get("actor")
                .and_then(|actor| actor.as_str())
                .unwrap_or("unknown")
                .to_owned(),
            position: event.position,
            short_hash: hash[..12].to_owned(),
            hash,
        }
    }
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_their_two_largest_units() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let after = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
        assert_eq!(duration_text(t0, after(85)), "85 ms");
        assert_eq!(duration_text(t0, after(12_345)), "12.3 s");
        assert_eq!(duration_text(t0, after(245_000)), "4 m 05 s");
        assert_eq!(duration_text(t0, after(10_920_000)), "3 h 02 m");
        assert_eq!(duration_text(t0, after(90_000_000)), "1 d 01 h");
        assert_eq!(
            duration_text(after(10), t0),
            "0 ms",
            "a clock step back is not negative"
        );
    }
}
