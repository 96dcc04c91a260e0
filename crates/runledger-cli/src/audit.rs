//! `runledger verify`, `export`, `replay` and `anchors`: the auditor's commands, each a thin
//! shell over `runledger_audit` (docs/auditing.md).
//!
//! `verify --file` and `replay --file` read an export and never open a database.
//! A verification that finds a problem exits with [`VERIFICATION_FAILED`], other errors with 1.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use futures_util::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use runledger_audit::anchor::{record_anchor, stored_anchors};
use runledger_audit::file::{read_anchors, run_from_export};
use runledger_audit::format::rfc3339;
use runledger_audit::verify::{Anchors, Report, Target, Verifier};
use runledger_audit::{LogBound, PointInTime, Scope, state_at, verify_database, verify_export};
use runledger_core::{RunId, TenantId};
use runledger_store::{EventReader, LogCursor, RecordedEvent};
use sqlx::PgPool;

use crate::database::Database;

/// The exit status of a verification that found a problem (errors exit with 1).
pub(crate) const VERIFICATION_FAILED: i32 = 2;

/// A verification found a problem; the report is printed already.
#[derive(Debug)]
pub(crate) struct VerificationFailed;

impl std::fmt::Display for VerificationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("verification failed")
    }
}

impl std::error::Error for VerificationFailed {}

/// `runledger verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Only this tenant's runs.
    #[arg(long)]
    tenant: Option<TenantId>,
    /// Only this run (of --tenant).
    #[arg(long, requires = "tenant")]
    run: Option<RunId>,
    /// Check these anchors (from `runledger anchors export`) instead of the stored ones.
    #[arg(long)]
    anchors: Option<PathBuf>,
    /// Check the hash chains only, no anchors.
    #[arg(long, conflicts_with = "anchors")]
    no_anchors: bool,
    /// Verify this export offline, with no database.
    #[arg(long)]
    file: Option<PathBuf>,
}

impl VerifyArgs {
    /// Whether it reads a file and needs no database.
    pub(crate) fn is_offline(&self) -> bool {
        self.file.is_some()
    }

    fn target(&self) -> Target {
        match (self.tenant, self.run) {
            (Some(tenant), Some(run)) => Target::Run(tenant, run),
            (Some(tenant), None) => Target::Tenant(tenant),
            (None, _) => Target::Log,
        }
    }
}

/// `runledger export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Only this tenant's events.
    #[arg(long)]
    tenant: Option<TenantId>,
    /// Only this run's events (of --tenant).
    #[arg(long, requires = "tenant")]
    run: Option<RunId>,
    /// Only events after this log cursor (`tx_id.position`) or recorded at or after this time
    /// (RFC 3339). Runs then start mid-chain, and anchors cannot be checked against the export.
    #[arg(long)]
    since: Option<LogBound>,
    /// Only events up to this log cursor, or recorded at or before this time.
    #[arg(long)]
    until: Option<LogBound>,
}

/// `runledger replay`.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The tenant.
    #[arg(long)]
    tenant: TenantId,
    /// The run.
    #[arg(long)]
    run: RunId,
    /// Fold the events 1 to N (default: all).
    #[arg(long, conflicts_with = "at")]
    at_version: Option<u64>,
    /// Fold the events recorded at or before this time (RFC 3339).
    #[arg(long)]
    at: Option<DateTime<Utc>>,
    /// Read the run from this export, with no database.
    #[arg(long)]
    file: Option<PathBuf>,
}

impl ReplayArgs {
    /// Whether it reads a file and needs no database.
    pub(crate) fn is_offline(&self) -> bool {
        self.file.is_some()
    }
}

/// `runledger anchors`.
#[derive(Debug, Subcommand)]
pub(crate) enum AnchorsCommand {
    /// Records an anchor if the log moved past the newest one, then writes every anchor to
    /// stdout as NDJSON: keep the file where whoever can rewrite the database cannot.
    Export,
    /// Records an anchor now, if the log moved past the newest one.
    Record,
    /// The newest anchor, the events after it, and the last verification.
    Status,
}

pub(crate) async fn verify(database: &Database, args: VerifyArgs) -> anyhow::Result<()> {
    let pool = database.migrated_pool().await?;
    let target = args.target();
    let anchors = match (&args.anchors, args.no_anchors, target) {
        (Some(path), _, _) => Anchors::Given(anchors_from(path)?),
        (None, true, _) | (None, false, Target::Run(..)) => Anchors::None,
        (None, false, _) => Anchors::Stored,
    };
    let bar = progress_bar(count_events(&pool, target.tenant()).await?, EVENTS)?;
    let report = verify_database(&pool, target, anchors, &|events| bar.inc(events)).await?;
    bar.finish_and_clear();
    let scope = match &args.anchors {
        Some(path) => format!("{target}, anchors of {}", path.display()),
        None => target.to_string(),
    };
    runledger_audit::status::record_verification(&pool, &scope, &report).await?;
    conclude(&report)
}

/// `runledger verify --file`: no database.
pub(crate) async fn verify_offline(args: VerifyArgs) -> anyhow::Result<()> {
    let path = args.file.clone().context("--file")?;
    let anchors = args.anchors.as_deref().map(anchors_from).transpose()?;
    let target = args.target();
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let bar = progress_bar(file.metadata()?.len(), BYTES)?;
    let input = BufReader::with_capacity(1 << 20, bar.wrap_read(file));
    let verified = tokio::task::spawn_blocking(move || verify_export(input, target, anchors))
        .await
        .context("the verification panicked")??;
    bar.finish_and_clear();
    let header = &verified.header;
    eprintln!(
        "export of {} written {} (horizon {})",
        header.scope, header.exported_at, header.horizon_tx_id
    );
    if verified.report.runs_starting_mid_chain > 0 {
        eprintln!(
            "{} runs start mid-chain (the export is filtered by since): their chains are verified \
             from their first event in the file on",
            verified.report.runs_starting_mid_chain
        );
    }
    if verified.report.anchors_not_covered > 0 {
        eprintln!(
            "{} anchors lie past the end of the export and were not checked",
            verified.report.anchors_not_covered
        );
    }
    conclude(&verified.report)
}

/// Prints the report; a problem is [`VerificationFailed`].
fn conclude(report: &Report) -> anyhow::Result<()> {
    for problem in report.problems() {
        println!("{problem}");
    }
    println!("{}", report.summary());
    if report.is_valid() {
        Ok(())
    } else {
        Err(VerificationFailed.into())
    }
}

fn anchors_from(path: &Path) -> anyhow::Result<Vec<runledger_audit::Anchor>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(read_anchors(BufReader::new(file))?)
}

pub(crate) async fn export(database: &Database, args: ExportArgs) -> anyhow::Result<()> {
    let pool = database.migrated_pool().await?;
    let scope = Scope {
        tenant_id: args.tenant,
        run_id: args.run,
        since: args.since,
        until: args.until,
    };
    let total = if scope.run_id.is_some() {
        0
    } else {
        count_events(&pool, scope.tenant_id).await?
    };
    let bar = progress_bar(total, EVENTS)?;
    let started = Instant::now();
    let mut chunks =
        std::pin::pin!(runledger_audit::export::export(EventReader::new(pool), scope).await?);
    let mut stdout = std::io::stdout();
    let mut events = 0;
    while let Some(chunk) = chunks.try_next().await? {
        stdout
            .write_all(chunk.text.as_bytes())
            .context("writing the export")?;
        events += chunk.events;
        bar.inc(chunk.events);
    }
    stdout.flush()?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "exported {events} events in {seconds:.1} s ({:.0} events/s)",
        events as f64 / seconds.max(1e-9)
    );
    Ok(())
}

pub(crate) async fn replay(database: &Database, args: ReplayArgs) -> anyhow::Result<()> {
    let reader = EventReader::new(database.migrated_pool().await?);
    let stored = reader.read_stream(args.tenant, args.run).await?;
    print_state(&stored, &args)
}

/// `runledger replay --file`: no database.
pub(crate) async fn replay_offline(args: ReplayArgs) -> anyhow::Result<()> {
    let path = args.file.clone().context("--file")?;
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let (tenant, run) = (args.tenant, args.run);
    let stored = tokio::task::spawn_blocking(move || {
        run_from_export(BufReader::with_capacity(1 << 20, file), tenant, run)
    })
    .await
    .context("reading the export panicked")??;
    print_state(&stored, &args)
}

/// Prints the run's state as of the point `args` names, warning first when its chain does not
/// verify (the state then folds events that were changed).
fn print_state(stored: &[RecordedEvent], args: &ReplayArgs) -> anyhow::Result<()> {
    let mut chain = Verifier::new(false);
    for event in stored {
        chain.push(event);
    }
    for problem in chain.finish(|_| false).problems() {
        eprintln!("warning: {problem}");
    }
    let point = match (args.at_version, args.at) {
        (Some(version), _) => PointInTime::Version(version),
        (None, Some(at)) => PointInTime::Time(at),
        (None, None) => PointInTime::Latest,
    };
    let state = state_at(stored, point)
        .with_context(|| format!("run {} of tenant {}", args.run, args.tenant))?;
    eprintln!(
        "as of version {}, recorded at {}",
        state.version,
        rfc3339(state.recorded_at)
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&state.run.to_operation_run_json())?
    );
    Ok(())
}

pub(crate) async fn anchors(database: &Database, command: AnchorsCommand) -> anyhow::Result<()> {
    let pool = database.migrated_pool().await?;
    match command {
        AnchorsCommand::Export => {
            announce(record_anchor(&pool).await?.as_ref());
            let mut stdout = std::io::stdout().lock();
            for anchor in stored_anchors(&pool).await? {
                stdout.write_all(anchor.to_line().as_bytes())?;
            }
            stdout.flush()?;
        }
        AnchorsCommand::Record => announce(record_anchor(&pool).await?.as_ref()),
        AnchorsCommand::Status => {
            let status = runledger_audit::status::status(&pool).await?;
            match &status.last_anchor {
                Some(anchor) => println!(
                    "last anchor: #{} at {} ({} events, {} runs), recorded {}; {} events since",
                    anchor.sequence,
                    anchor.cursor,
                    anchor.event_count,
                    anchor.run_count,
                    rfc3339(anchor.recorded_at),
                    status.events_after_last_anchor
                ),
                None => println!(
                    "no anchor yet; {} events to anchor",
                    status.events_after_last_anchor
                ),
            }
            match &status.last_verification {
                Some(verification) => println!(
                    "last verification: {} of {}: {} (runs {}, events {}, anchors {}){}",
                    rfc3339(verification.recorded_at),
                    verification.scope,
                    if verification.valid { "OK" } else { "FAILED" },
                    verification.runs,
                    verification.events,
                    verification.anchors_checked,
                    verification
                        .first_failure
                        .as_deref()
                        .map(|failure| format!("; first failure: {failure}"))
                        .unwrap_or_default()
                ),
                None => println!("no verification recorded yet"),
            }
        }
    }
    Ok(())
}

fn announce(recorded: Option<&runledger_audit::Anchor>) {
    match recorded {
        Some(anchor) => eprintln!(
            "recorded anchor #{} at {} ({} events)",
            anchor.sequence, anchor.cursor, anchor.event_count
        ),
        None => eprintln!("the log has not moved past the newest anchor"),
    }
}

/// How many events the log (or a tenant's part) holds, for a progress bar.
async fn count_events(pool: &PgPool, tenant: Option<TenantId>) -> anyhow::Result<u64> {
    let reader = EventReader::new(pool.clone());
    Ok(reader
        .count_events(LogCursor::START, tenant, u64::MAX)
        .await?)
}

/// Progress counted in events.
const EVENTS: &str =
    "[{bar:40}] {percent:>3}% {human_pos}/{human_len} events ({per_sec}, {eta} left)";
/// Progress counted in bytes of a file.
const BYTES: &str = "[{bar:40}] {percent:>3}% {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)";

/// A progress bar on stderr (drawn only when stderr is a terminal); a spinner without a length.
fn progress_bar(length: u64, template: &str) -> anyhow::Result<ProgressBar> {
    if length == 0 {
        return Ok(ProgressBar::new_spinner());
    }
    Ok(ProgressBar::new(length).with_style(
        ProgressStyle::with_template(template)
            .context("progress bar template")?
            .progress_chars("=> "),
    ))
}
