//! Verification: every run's hash chain, walked in safe log order with memory bounded by the
//! number of runs (one chain head each), and the anchors checked as the walk passes them.
//!
//! [`Verifier`] does the checking and no IO: it is fed events in log order, from the database
//! ([`verify_database`], a walk of the log up to the horizon at its start) or from an export
//! file ([`verify_export`]), and reports the first broken event of each run, every anchor the
//! log no longer matches, and, for files, lines that are not what an export holds.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::io::BufRead;

use runledger_core::{EventId, RunId, TenantId};
use runledger_store::chain::{ChainBreak, ChainHead};
use runledger_store::{EventReader, LogCursor, RecordedEvent};
use sqlx::PgPool;

use crate::anchor::{
    Anchor, AnchorBreak, LogDigest, TenantState, check_anchor_chain, stored_anchors,
};
use crate::error::AuditError;
use crate::file::{CheckedItem, ExportReader};
use crate::format::ExportHeader;
use crate::{LOG_BATCH, parallel};

/// What a verification covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every event.
    Log,
    /// One tenant's events.
    Tenant(TenantId),
    /// One run's events.
    Run(TenantId, RunId),
}

impl Target {
    /// The tenant it is limited to.
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            Target::Log => None,
            Target::Tenant(tenant) | Target::Run(tenant, _) => Some(*tenant),
        }
    }

    fn contains(&self, event: &RecordedEvent) -> bool {
        match self {
            Target::Log => true,
            Target::Tenant(tenant) => event.tenant_id == *tenant,
            Target::Run(tenant, run) => event.tenant_id == *tenant && event.run_id == *run,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Log => f.write_str("the whole log"),
            Target::Tenant(tenant) => write!(f, "tenant {tenant}"),
            Target::Run(tenant, run) => write!(f, "tenant {tenant}, run {run}"),
        }
    }
}

/// The first event of a run whose chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFailure {
    /// The run's tenant (as the event says).
    pub tenant_id: TenantId,
    /// The run.
    pub run_id: RunId,
    /// The event's version.
    pub version: u64,
    /// Its position.
    pub position: i64,
    /// Its place in the log.
    pub cursor: LogCursor,
    /// Its id.
    pub event_id: EventId,
    /// What is wrong.
    pub reason: ChainBreak,
}

impl RunFailure {
    fn new(event: &RecordedEvent, reason: ChainBreak) -> Self {
        RunFailure {
            tenant_id: event.tenant_id,
            run_id: event.run_id,
            version: event.version,
            position: event.position,
            cursor: LogCursor::after(event),
            event_id: event.event_id,
            reason,
        }
    }

    /// A stable name of the reason: `hash_mismatch`, `broken_link`, `version_gap`,
    /// `order_changed`.
    pub fn reason_code(&self) -> &'static str {
        match self.reason {
            ChainBreak::HashMismatch => "hash_mismatch",
            ChainBreak::BrokenLink => "broken_link",
            ChainBreak::VersionGap { .. } => "version_gap",
            ChainBreak::OrderChanged => "order_changed",
        }
    }

    /// What the reason means, for people.
    pub fn explanation(&self) -> String {
        match self.reason {
            ChainBreak::HashMismatch => "the stored hash does not match the event's fields: its \
                                         payload, metadata, type, record time or ids changed"
                .to_owned(),
            ChainBreak::BrokenLink => "its prev_hash is not the previous event's hash: an event \
                                       before it was replaced"
                .to_owned(),
            ChainBreak::VersionGap { expected } => {
                format!("version {expected} is missing: an event was deleted")
            }
            ChainBreak::OrderChanged => "a lower version of the run comes after it in the log: \
                                         the order of events changed"
                .to_owned(),
        }
    }
}

impl fmt::Display for RunFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "run {} (tenant {}): version {} at {}: {}",
            self.run_id,
            self.tenant_id,
            self.version,
            self.cursor,
            self.explanation()
        )
    }
}

/// What is wrong with an anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorProblem {
    /// Its own record does not verify.
    Record(AnchorBreak),
    /// The log no longer gives what the anchor recorded for a tenant.
    Tenant {
        /// The tenant.
        tenant: TenantId,
        /// What the anchor recorded.
        anchored: TenantState,
        /// What the log gives now.
        found: TenantState,
    },
}

/// An anchor that does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorFailure {
    /// Its sequence.
    pub sequence: u64,
    /// Its cursor.
    pub cursor: LogCursor,
    /// What is wrong.
    pub problem: AnchorProblem,
}

impl fmt::Display for AnchorFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "anchor #{} at {}: ", self.sequence, self.cursor)?;
        match &self.problem {
            AnchorProblem::Record(problem) => problem.fmt(f),
            AnchorProblem::Tenant {
                tenant,
                anchored,
                found,
            } => write!(
                f,
                "tenant {tenant} had {anchored}; the log now gives {found}: events up to the \
                 anchor were deleted, added, reordered or rewritten"
            ),
        }
    }
}

/// How many problems with an export's lines a report lists before only counting them.
const LISTED_LINE_PROBLEMS: usize = 100;

/// What a verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Runs seen.
    pub runs: u64,
    /// Events checked.
    pub events: u64,
    /// Runs whose first event in an export filtered by `since` is not version 1: their chain is
    /// verified from that event on, not before it.
    pub runs_starting_mid_chain: u64,
    /// The first broken event of each broken run, in the order they were found.
    pub broken_runs: Vec<RunFailure>,
    /// Anchors checked against the log.
    pub anchors_checked: u64,
    /// Anchors past the end of what was verified (recorded after an export was written).
    pub anchors_not_covered: u64,
    /// Anchors that do not verify: every one, in the order the walk passed them (an anchor
    /// the log no longer matches once for each tenant it no longer matches).
    pub anchor_failures: Vec<AnchorFailure>,
    /// Problems with an export's lines (the first ones; see `line_problems_omitted`).
    pub line_problems: Vec<String>,
    /// Problems with lines beyond the listed ones.
    pub line_problems_omitted: u64,
}

impl Report {
    /// Whether everything verified.
    pub fn is_valid(&self) -> bool {
        self.broken_runs.is_empty()
            && self.anchor_failures.is_empty()
            && self.line_problems.is_empty()
    }

    /// Every problem, one per line, for people.
    pub fn problems(&self) -> impl Iterator<Item = String> + '_ {
        self.broken_runs
            .iter()
            .map(ToString::to_string)
            .chain(self.anchor_failures.iter().map(ToString::to_string))
            .chain(self.line_problems.iter().cloned())
            .chain(
                (self.line_problems_omitted > 0)
                    .then(|| format!("… and {} more line problems", self.line_problems_omitted)),
            )
    }

    /// `verified 5 runs, 25 events, 1 anchor: OK`, or `…: FAILED (2 broken runs)`.
    pub fn summary(&self) -> String {
        let mut summary = format!(
            "verified {}, {}",
            counted(self.runs, "run"),
            counted(self.events, "event")
        );
        if self.anchors_checked > 0 || !self.anchor_failures.is_empty() {
            summary.push_str(&format!(", {}", counted(self.anchors_checked, "anchor")));
        }
        if self.is_valid() {
            summary.push_str(": OK");
        } else {
            let lines = self.line_problems.len() as u64 + self.line_problems_omitted;
            let counts: Vec<String> = [
                (self.broken_runs.len() as u64, "broken run"),
                (self.anchor_failures.len() as u64, "anchor failure"),
                (lines, "bad line"),
            ]
            .into_iter()
            .filter(|(count, _)| *count > 0)
            .map(|(count, noun)| counted(count, noun))
            .collect();
            summary.push_str(&format!(": FAILED ({})", counts.join(", ")));
        }
        summary
    }

    fn line_problem(&mut self, problem: String) {
        if self.line_problems.len() < LISTED_LINE_PROBLEMS {
            self.line_problems.push(problem);
        } else {
            self.line_problems_omitted += 1;
        }
    }
}

/// `1 run`, `2 runs`.
fn counted(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// A run's chain so far.
enum RunChain {
    Verified(ChainHead),
    /// Broken at `broken_runs[failure]`; nothing after that is checked.
    Broken {
        failure: usize,
    },
}

/// Checks events fed in log order; no IO.
pub struct Verifier {
    mid_chain_allowed: bool,
    anchor_tenant: Option<TenantId>,
    runs: HashMap<RunId, RunChain>,
    digest: LogDigest,
    anchors: VecDeque<Anchor>,
    last_cursor: Option<LogCursor>,
    report: Report,
}

impl Verifier {
    /// A verifier of whole chains, or (`mid_chain_allowed`, for exports filtered by `since`) of
    /// chains that may start at any version, trusting the first event's `prev_hash`.
    pub fn new(mid_chain_allowed: bool) -> Self {
        Verifier {
            mid_chain_allowed,
            anchor_tenant: None,
            runs: HashMap::new(),
            digest: LogDigest::default(),
            anchors: VecDeque::new(),
            last_cursor: None,
            report: Report::default(),
        }
    }

    /// Also checks `anchors` as the walk passes their cursors: of every tenant, or of `tenant`
    /// only (when only its events are fed). The walk must start at the start of the log.
    pub fn with_anchors(mut self, mut anchors: Vec<Anchor>, tenant: Option<TenantId>) -> Self {
        anchors.sort_by_key(|anchor| anchor.sequence);
        let breaks = check_anchor_chain(&anchors);
        for (sequence, problem) in &breaks {
            let cursor = anchors
                .iter()
                .find(|anchor| anchor.sequence == *sequence)
                .map_or(LogCursor::START, |anchor| anchor.cursor);
            self.report.anchor_failures.push(AnchorFailure {
                sequence: *sequence,
                cursor,
                problem: AnchorProblem::Record(problem.clone()),
            });
        }
        // An anchor whose own fields were edited proves nothing about the log.
        anchors.retain(|anchor| !breaks.contains(&(anchor.sequence, AnchorBreak::HashMismatch)));
        anchors.sort_by_key(|anchor| anchor.cursor);
        self.anchors = anchors.into();
        self.anchor_tenant = tenant;
        self
    }

    /// Checks the next event of the log.
    pub fn push(&mut self, event: &RecordedEvent) {
        self.push_checked(event, event.hash_is_intact());
    }

    /// Checks the next events of the log, their hashes on every core: recomputing hashes is
    /// most of a verification's work, and each event's needs no other event.
    pub fn push_batch(&mut self, events: &[RecordedEvent]) {
        let intact = parallel::map(events, RecordedEvent::hash_is_intact);
        for (event, intact) in events.iter().zip(intact) {
            self.push_checked(event, intact);
        }
    }

    /// Checks the next event, given whether its own hash is intact
    /// ([`RecordedEvent::hash_is_intact`], computed ahead).
    pub fn push_checked(&mut self, event: &RecordedEvent, hash_is_intact: bool) {
        let cursor = LogCursor::after(event);
        if let Some(last) = self.last_cursor
            && cursor <= last
        {
            self.report.line_problem(format!(
                "the event at {cursor} (run {}, version {}) comes after {last}: the events are \
                 not in log order",
                event.run_id, event.version
            ));
        }
        self.last_cursor = Some(self.last_cursor.map_or(cursor, |last| last.max(cursor)));
        while self
            .anchors
            .front()
            .is_some_and(|anchor| anchor.cursor < cursor)
        {
            let anchor = self.anchors.pop_front().expect("an anchor is there");
            self.check_anchor(&anchor);
        }
        self.digest.apply(event);
        self.report.events += 1;
        self.check_link(event, hash_is_intact);
    }

    fn check_link(&mut self, event: &RecordedEvent, hash_is_intact: bool) {
        let failures = &mut self.report.broken_runs;
        let mut broken = |reason| {
            failures.push(RunFailure::new(event, reason));
            RunChain::Broken {
                failure: failures.len() - 1,
            }
        };
        match self.runs.entry(event.run_id) {
            Entry::Vacant(slot) => {
                self.report.runs += 1;
                let head = if event.version > 1 && self.mid_chain_allowed {
                    self.report.runs_starting_mid_chain += 1;
                    ChainHead {
                        version: event.version - 1,
                        hash: event.prev_hash,
                    }
                } else {
                    ChainHead::START
                };
                slot.insert(match head.next_checked(event, hash_is_intact) {
                    Ok(head) => RunChain::Verified(head),
                    Err(reason) => broken(reason),
                });
            }
            Entry::Occupied(mut slot) => match slot.get() {
                RunChain::Verified(head) => {
                    let next = match head.next_checked(event, hash_is_intact) {
                        Ok(head) => RunChain::Verified(head),
                        Err(reason) => broken(reason),
                    };
                    slot.insert(next);
                }
                RunChain::Broken { failure } => {
                    // The version missing where the run broke turns up later in the log: it
                    // was not deleted, it was moved.
                    let failure = &mut failures[*failure];
                    if failure.reason
                        == (ChainBreak::VersionGap {
                            expected: event.version,
                        })
                    {
                        failure.reason = ChainBreak::OrderChanged;
                    }
                }
            },
        }
    }

    fn check_anchor(&mut self, anchor: &Anchor) {
        self.report.anchors_checked += 1;
        let tenants: BTreeSet<TenantId> = match self.anchor_tenant {
            Some(tenant) => BTreeSet::from([tenant]),
            None => anchor
                .tenants
                .iter()
                .map(|entry| entry.tenant_id)
                .chain(self.digest.tenants().map(|(tenant, _)| tenant))
                .collect(),
        };
        for tenant in tenants {
            let (anchored, found) = (anchor.tenant(tenant), self.digest.tenant(tenant));
            // Once a tenant's log differs from an anchor it differs from every later one too,
            // and each of them is reported: an auditor holding any one of those anchors must
            // learn that it fails.
            if anchored != found {
                self.report.anchor_failures.push(AnchorFailure {
                    sequence: anchor.sequence,
                    cursor: anchor.cursor,
                    problem: AnchorProblem::Tenant {
                        tenant,
                        anchored,
                        found,
                    },
                });
            }
        }
    }

    /// Checks the anchors left whose cursor `covered` says the walk reached, counts the others,
    /// and reports.
    pub fn finish(mut self, covered: impl Fn(LogCursor) -> bool) -> Report {
        while let Some(anchor) = self.anchors.pop_front() {
            if covered(anchor.cursor) {
                self.check_anchor(&anchor);
            } else {
                self.report.anchors_not_covered += 1;
            }
        }
        self.report
    }
}

/// Which anchors a verification checks the log against.
#[derive(Debug, Clone)]
pub enum Anchors {
    /// None: the chains only.
    None,
    /// The anchors stored in the database (which a superuser could have rewritten too).
    Stored,
    /// Anchors exported earlier (`runledger anchors export`).
    Given(Vec<Anchor>),
}

/// Verifies the log in the database: chains in safe log order up to the horizon at the start,
/// and anchors (read from `pool` when stored), which need a whole tenant (or the whole log).
/// `progress` hears how many events each batch checked.
///
/// # Errors
/// [`AuditError::AnchorsNeedWholeTenants`] for anchors with [`Target::Run`]; on a database
/// failure or a row that does not decode.
pub async fn verify_database(
    pool: &PgPool,
    target: Target,
    anchors: Anchors,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Report, AuditError> {
    let reader = EventReader::new(pool.clone());
    if let Target::Run(tenant, run) = target {
        if !matches!(anchors, Anchors::None) {
            return Err(AuditError::AnchorsNeedWholeTenants);
        }
        let report = verify_one_run(&reader, tenant, run).await?;
        progress(report.events);
        return Ok(report);
    }
    let horizon = reader.horizon().await?;
    let anchors = match anchors {
        Anchors::None => Vec::new(),
        Anchors::Stored => stored_anchors(pool).await?,
        Anchors::Given(anchors) => anchors,
    };
    let mut verifier = Verifier::new(false).with_anchors(anchors, target.tenant());
    let mut walk = reader.walk_to(horizon, LogCursor::START, target.tenant(), LOG_BATCH);
    while let Some(batch) = walk.next_batch().await? {
        verifier.push_batch(&batch);
        progress(batch.len() as u64);
    }
    Ok(verifier.finish(|cursor| horizon.covers(cursor)))
}

/// One run's chain, in log order like the whole log's, so that a changed order shows as such.
async fn verify_one_run(
    reader: &EventReader,
    tenant: TenantId,
    run: RunId,
) -> Result<Report, AuditError> {
    let mut events = reader.read_stream(tenant, run).await?;
    events.sort_by_key(LogCursor::after);
    let mut verifier = Verifier::new(false);
    verifier.push_batch(&events);
    Ok(verifier.finish(|_| false))
}

/// One run's verification, as the HTTP route answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunVerification {
    /// Events checked.
    pub events_checked: u64,
    /// The first event that does not verify.
    pub first_invalid: Option<RunFailure>,
}

/// Verifies one run's chain; `None` when the tenant has no such run.
///
/// # Errors
/// On a database failure or a row that does not decode.
pub async fn verify_run(
    reader: &EventReader,
    tenant: TenantId,
    run: RunId,
) -> Result<Option<RunVerification>, AuditError> {
    let report = verify_one_run(reader, tenant, run).await?;
    Ok((report.events > 0).then(|| RunVerification {
        events_checked: report.events,
        first_invalid: report.broken_runs.into_iter().next(),
    }))
}

/// How many events of a file are checked together.
const FILE_BATCH: usize = 2000;

/// An export's verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// The export's header.
    pub header: ExportHeader,
    /// What the verification found.
    pub report: Report,
}

/// Verifies an export offline: the chains within it (from the first event of each run present,
/// for an export filtered by `since`), its lines, its end line, and `anchors` if given.
///
/// # Errors
/// [`AuditError::NotAnExport`] when the header is not an export's;
/// [`AuditError::AnchorsNeedWholeTenants`] for anchors with a run or a filtered export;
/// [`AuditError::Io`] when reading fails.
pub fn verify_export(
    input: impl BufRead,
    target: Target,
    anchors: Option<Vec<Anchor>>,
) -> Result<ExportReport, AuditError> {
    let mut export = ExportReader::open(input)?;
    let header = export.header().clone();
    let mut verifier = Verifier::new(header.scope.since.is_some());
    if let Some(anchors) = anchors {
        if !header.scope.holds_whole_tenants() || matches!(target, Target::Run(..)) {
            return Err(AuditError::AnchorsNeedWholeTenants);
        }
        let tenant = target.tenant().or(header.scope.tenant_id);
        verifier = verifier.with_anchors(anchors, tenant);
    }
    while let Some(batch) = export.next_checked(FILE_BATCH)? {
        for item in batch {
            match item {
                CheckedItem::Event {
                    event,
                    hash_is_intact,
                } if target.contains(&event) => verifier.push_checked(&event, hash_is_intact),
                CheckedItem::Event { .. } => {}
                CheckedItem::Invalid(problem) => verifier.report.line_problem(problem),
            }
        }
    }
    for problem in export.end_problems() {
        verifier.report.line_problem(problem);
    }
    let horizon = header.horizon_tx_id;
    Ok(ExportReport {
        report: verifier.finish(|cursor| cursor.tx_id < horizon),
        header,
    })
}
