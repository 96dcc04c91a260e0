//! What the templates show of a run: one combined state with the seed's labels, times, phase
//! durations, the progress bar, why it ended, its limits and heartbeat, and its context as
//! key/value rows, computed once here so that every page and every live update shows a run alike.

use chrono::{DateTime, Utc};
use runledger_core::{CompletionReason, Limit, Outcome, RunSnapshot, RunStatus};

use super::times::{TimeView, duration_text};

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

/// One phase of a run (queued, running) on the run page's duration bars: where it starts and
/// how long it is, in hundredths of the run's whole life so far.
#[derive(Debug, Clone)]
pub struct PhaseView {
    /// `queued` or `running` (the CSS class).
    pub kind: &'static str,
    pub label: &'static str,
    /// `4 m 05 s`, and `so far` while it lasts.
    pub duration: String,
    pub ongoing: bool,
    pub x: String,
    pub width: String,
}

/// Why a run ended (or is ending), said at the top of its page.
#[derive(Debug, Clone)]
pub struct ReasonView {
    /// `failed`, `timed-out`, `cancelled`, `cancelling` (the CSS class).
    pub kind: &'static str,
    pub title: String,
    pub detail: String,
}

/// A limit of the run and when it passes.
#[derive(Debug, Clone)]
pub struct DeadlineView {
    pub label: &'static str,
    /// `10 m 00 s`.
    pub limit: String,
    /// When it passes; none while it does not bind yet (a run deadline before the start).
    pub at: Option<TimeView>,
    pub passed: bool,
}

/// A top-level key of the context with its value (strings unquoted, the rest as JSON).
#[derive(Debug, Clone)]
pub struct ContextRow {
    pub key: String,
    pub value: String,
    /// The `key=value` the runs list searches for, when the value is a plain one.
    pub search: Option<String>,
    /// The same, encoded for a query string.
    pub search_param: Option<String>,
}

/// A run as every page shows it.
#[derive(Debug, Clone)]
pub struct RunView {
    pub id: String,
    /// `01a23566…87c0c`: the first 8 hex digits (a search prefix; in a UUIDv7 the time, which
    /// runs queued together share) and the last 5 (random: what tells them apart).
    pub short_id: String,
    pub tenant_id: i64,
    pub page_url: String,
    pub run_type: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub outcome: &'static str,
    pub outcome_label: &'static str,
    /// One indicator of status and outcome: `queued`, `running`, or the outcome once completed.
    pub state: &'static str,
    /// Its seed label: `Queued`, `Running`, `Succeeded`, `Partially succeeded`, …
    pub state_label: &'static str,
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
    /// Completed without ever starting (dispatch failed, cancelled or timed out while queued).
    pub never_started: bool,
    /// Whether any count was reported (a run that reported none shows no counts at all).
    pub counts_known: bool,
    pub success: u64,
    pub failed: u64,
    pub skipped: u64,
    pub total: Option<u64>,
    /// `9 succeeded, 1 failed, 0 skipped of 10`: the bar's accessible name.
    pub progress_text: String,
    /// `9 ok · 1 failed of 10`: only the counts that are not zero.
    pub counts_text: String,
    pub bar: Vec<BarSegment>,
    pub failures: Vec<FailureView>,
    /// The code a failed or partly failed run shows in its row: its most frequent failure.
    pub headline_failure: Option<FailureView>,
    pub phases: Vec<PhaseView>,
    pub reason: Option<ReasonView>,
    pub deadlines: Vec<DeadlineView>,
    pub worker: Option<String>,
    pub last_heartbeat: Option<TimeView>,
    pub cancel_requested: Option<TimeView>,
    pub cancel_reason: Option<String>,
    pub context_rows: Vec<ContextRow>,
    pub identity_hash: String,
    pub identity_json: String,
    pub context_json: String,
    /// The run as the API's JSON (for the run page's "Copy as JSON"; empty in list rows).
    pub json: String,
    pub version: u64,
}

impl RunView {
    /// The view of `run`, whose last heartbeat stored outside the log is `stored_heartbeat`;
    /// `now` measures a run still under way.
    pub fn new(
        run: &RunSnapshot,
        page_url: String,
        stored_heartbeat: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        let counts = &run.summary_counts;
        let processed = counts.success + counts.failed + counts.skipped;
        let time = |t: DateTime<Utc>| TimeView::new(t, now);
        let failures: Vec<FailureView> = run
            .failure_summary
            .iter()
            .map(|failure| FailureView {
                code: failure.code.as_str().to_owned(),
                message: failure.message.clone(),
                count: failure.count,
            })
            .collect();
        let headline_failure = matches!(run.outcome, Outcome::Failed | Outcome::PartiallySucceeded)
            .then(|| {
                // The most frequent code; the first reported on a tie.
                failures
                    .iter()
                    .rev()
                    .max_by_key(|failure| failure.count)
                    .cloned()
            })
            .flatten();
        let ran_until = run.completed_at.unwrap_or(now);
        let (state, state_label) = match run.status {
            RunStatus::Queued | RunStatus::Running => (run.status.as_str(), run.status.label()),
            RunStatus::Completed => (run.outcome.as_str(), run.outcome.label()),
        };
        let last_heartbeat = run.last_heartbeat_at(stored_heartbeat);
        Self {
            id: run.id.to_string(),
            short_id: short_id(&run.id.to_string()),
            tenant_id: run.tenant_id.get(),
            page_url,
            run_type: run.run_type.as_str().to_owned(),
            status: run.status.as_str(),
            status_label: run.status.label(),
            outcome: run.outcome.as_str(),
            outcome_label: run.outcome.label(),
            state,
            state_label,
            done: !run.status.is_active(),
            initiator_name: run.initiator.name.clone(),
            user_id: run.initiator.user_id.map(|u| u.get()),
            created: time(run.created_at),
            started: run.started_at.map(time),
            completed: run.completed_at.map(time),
            updated: time(run.updated_at),
            waited: run
                .started_at
                .map(|started| duration_text(run.created_at, started)),
            ran: run
                .started_at
                .filter(|_| run.status != RunStatus::Queued)
                .map(|started| duration_text(started, ran_until)),
            never_started: run.status == RunStatus::Completed && run.started_at.is_none(),
            counts_known: counts.total.is_some() || processed > 0,
            success: counts.success,
            failed: counts.failed,
            skipped: counts.skipped,
            total: counts.total,
            progress_text: progress_text(run),
            counts_text: counts_text(run),
            bar: bar(run),
            headline_failure,
            failures,
            phases: phases(run, now),
            reason: reason(run),
            deadlines: deadlines(run, stored_heartbeat, now),
            worker: run.worker.as_ref().map(|w| w.as_str().to_owned()),
            last_heartbeat: last_heartbeat.map(time),
            cancel_requested: run.cancel_requested.as_ref().map(|r| time(r.requested_at)),
            cancel_reason: run.cancel_requested.as_ref().and_then(|r| r.reason.clone()),
            context_rows: context_rows(&run.context),
            identity_hash: run.run_identity_hash.to_hex(),
            identity_json: pretty(&run.identity),
            context_json: pretty(&run.context),
            json: String::new(),
            version: run.version,
        }
    }

    /// Whether a writer may still cancel it: active, and not already asked to.
    pub fn cancellable(&self) -> bool {
        !self.done && self.cancel_requested.is_none()
    }
}

/// `01a23566…87c0c` of a run id's text.
fn short_id(id: &str) -> String {
    format!("{}…{}", &id[..8], &id[id.len() - 5..])
}

fn progress_text(run: &RunSnapshot) -> String {
    let counts = &run.summary_counts;
    let of_total = counts.total.map_or_else(
        || " (total not known yet)".to_owned(),
        |t| format!(" of {t}"),
    );
    format!(
        "{} succeeded, {} failed, {} skipped{of_total}",
        counts.success, counts.failed, counts.skipped
    )
}

fn counts_text(run: &RunSnapshot) -> String {
    let counts = &run.summary_counts;
    let parts: Vec<String> = [
        (counts.success, "ok"),
        (counts.failed, "failed"),
        (counts.skipped, "skipped"),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, name)| format!("{count} {name}"))
    .collect();
    let done = if parts.is_empty() {
        "0 done".to_owned()
    } else {
        parts.join(" · ")
    };
    match counts.total {
        Some(total) => format!("{done} of {total}"),
        None => done,
    }
}

fn bar(run: &RunSnapshot) -> Vec<BarSegment> {
    let counts = &run.summary_counts;
    let processed = counts.success + counts.failed + counts.skipped;
    // A run with no total yet fills the bar with what it has done so far.
    let whole = counts.total.unwrap_or(processed).max(processed).max(1) as f64;
    let mut x = 0.0;
    [
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
    .collect()
}

/// The queued and running phases, each as a share of the run's life (queued to completed, or
/// to now while it is active).
fn phases(run: &RunSnapshot, now: DateTime<Utc>) -> Vec<PhaseView> {
    let end = run.completed_at.unwrap_or(now).max(run.created_at);
    let whole = (end - run.created_at).num_milliseconds().max(1) as f64;
    let share = |from: DateTime<Utc>, to: DateTime<Utc>| {
        let x = (from - run.created_at).num_milliseconds().max(0) as f64 * 100.0 / whole;
        let width = (to - from).num_milliseconds().max(0) as f64 * 100.0 / whole;
        (format!("{x:.2}"), format!("{:.2}", width.max(0.5)))
    };
    let queued_until = run.started_at.unwrap_or(end);
    let (x, width) = share(run.created_at, queued_until);
    let mut phases = vec![PhaseView {
        kind: "queued",
        label: "Queued",
        duration: duration_text(run.created_at, queued_until),
        ongoing: run.status == RunStatus::Queued,
        x,
        width,
    }];
    if let Some(started) = run.started_at {
        let (x, width) = share(started, end);
        phases.push(PhaseView {
            kind: "running",
            label: "Running",
            duration: duration_text(started, end),
            ongoing: run.status == RunStatus::Running,
            x,
            width,
        });
    }
    phases
}

/// Why the run failed, timed out or was cancelled, or that it is being asked to stop.
fn reason(run: &RunSnapshot) -> Option<ReasonView> {
    let first_failure = run
        .failure_summary
        .first()
        .map(|f| format!("{}: {}", f.code.as_str(), f.message));
    match &run.completion {
        Some(CompletionReason::TimedOut { time_out }) => {
            let heartbeat = time_out.last_heartbeat_at.map_or_else(
                || "no heartbeat was ever received".to_owned(),
                |at| {
                    format!(
                        "the last heartbeat was at {}",
                        at.format("%H:%M:%S%.3f UTC")
                    )
                },
            );
            Some(ReasonView {
                kind: "timed-out",
                title: format!("Timed out: {}", limit_label(time_out.limit)),
                detail: format!(
                    "{} ({} s) passed at {}; {heartbeat}. Failure code {}.",
                    limit_label(time_out.limit),
                    time_out.limit_seconds.get(),
                    time_out.passed_at.format("%Y-%m-%d %H:%M:%S%.3f UTC"),
                    time_out.limit.failure_code()
                ),
            })
        }
        Some(CompletionReason::Cancelled { cancellation }) => Some(ReasonView {
            kind: "cancelled",
            title: "Cancelled".to_owned(),
            detail: cancellation.reason.clone().map_or_else(
                || "Cancelled without a reason given.".to_owned(),
                |reason| format!("Reason: {reason}"),
            ),
        }),
        Some(CompletionReason::DispatchFailed) => Some(ReasonView {
            kind: "failed",
            title: "Could not be dispatched: it never started".to_owned(),
            detail: first_failure.unwrap_or_else(|| "No worker took the run.".to_owned()),
        }),
        _ if run.outcome == Outcome::Failed => Some(ReasonView {
            kind: "failed",
            title: "Failed".to_owned(),
            detail: first_failure.unwrap_or_else(|| "No failure was reported.".to_owned()),
        }),
        _ => run
            .cancel_requested
            .as_ref()
            .filter(|_| run.status.is_active())
            .map(|request| ReasonView {
                kind: "cancelling",
                title: "Cancel requested: waiting for the worker to stop".to_owned(),
                detail: request.reason.clone().map_or_else(
                    || "No reason given.".to_owned(),
                    |reason| format!("Reason: {reason}"),
                ),
            }),
    }
}

fn limit_label(limit: Limit) -> &'static str {
    match limit {
        Limit::StartDeadline => "start deadline",
        Limit::RunDeadline => "run deadline",
        Limit::HeartbeatTimeout => "heartbeat timeout",
    }
}

fn deadlines(
    run: &RunSnapshot,
    stored_heartbeat: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<DeadlineView> {
    Limit::ALL
        .into_iter()
        .filter_map(|limit| {
            let seconds = run.limits.get(limit)?;
            let at = match limit {
                Limit::StartDeadline => run.start_deadline_at(),
                Limit::RunDeadline => run.run_deadline_at(),
                Limit::HeartbeatTimeout => run.heartbeat_deadline_at(stored_heartbeat),
            };
            let zero = DateTime::<Utc>::UNIX_EPOCH;
            let seconds = i64::from(seconds.get());
            Some(DeadlineView {
                label: match limit {
                    Limit::StartDeadline => "Start deadline",
                    Limit::RunDeadline => "Run deadline",
                    Limit::HeartbeatTimeout => "Heartbeat timeout",
                },
                limit: duration_text(zero, zero + chrono::Duration::seconds(seconds)),
                passed: run.status.is_active() && at.is_some_and(|at| at <= now),
                at: at.map(|at| TimeView::new(at, now)),
            })
        })
        .collect()
}

fn context_rows(context: &serde_json::Value) -> Vec<ContextRow> {
    let Some(object) = context.as_object() else {
        return Vec::new();
    };
    object
        .iter()
        .map(|(key, value)| {
            let (text, plain) = match value {
                serde_json::Value::String(s) => (s.clone(), true),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
                    (value.to_string(), true)
                }
                _ => (value.to_string(), false),
            };
            let searchable = plain
                && runledger_projections::operation_runs::Attribute::parse(&format!(
                    "{key}={text}"
                ))
                .is_ok();
            let search = searchable.then(|| format!("{key}={text}"));
            ContextRow {
                key: key.clone(),
                search_param: search
                    .as_ref()
                    .map(|s| form_urlencoded::byte_serialize(s.as_bytes()).collect()),
                search,
                value: text,
            }
        })
        .collect()
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}
