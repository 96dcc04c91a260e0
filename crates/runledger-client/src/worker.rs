//! [`RunWorker`]: the handle a background job holds for its run.
//!
//! Counting an item is a memory write: increments are coalesced and sent as one progress report
//! when enough have gathered (`flush_at_items`) or enough time has passed (`flush_every`), by a
//! task of the handle's own. A report is sent under an `Idempotency-Key` chosen when its batch
//! is cut, and a batch whose send failed without an answer is sent again, first, with the same
//! key: a count is never lost and never counted twice. When nothing was sent for a while, the
//! task sends a heartbeat (`POST …/heartbeat`, not an event), at least three times per heartbeat
//! timeout of the run, so a live worker without progress to report is never timed out. Every
//! answer, a heartbeat's too, says whether someone asked to cancel the run
//! ([`RunWorker::cancel_requested`]). The task stops when the handle completes, is released or
//! is dropped; and it stops heartbeating once the ledger answers that the run has completed.
//!
//! A handle dropped without [`RunWorker::complete`] (the job returned early, or panicked)
//! completes its run `failed` from a task of its own, with the failure code `worker.dropped` or
//! `worker.panicked`, so no run stays `running` because its worker went away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use runledger_wire::{
    CommandAnswer, CompleteBody, FailureBody, OperationRun, Outcome, ProgressBody,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::client::{Client, fresh_key};
use crate::error::ClientError;

/// The failure code of a run whose handle was dropped without completing it.
pub const WORKER_DROPPED: &str = "worker.dropped";
/// The failure code of a run whose handle was dropped by a panic.
pub const WORKER_PANICKED: &str = "worker.panicked";

/// How a [`RunWorker`] reports.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Send gathered increments at least this often.
    pub flush_every: Duration,
    /// Send at once when this many items have gathered.
    pub flush_at_items: u64,
    /// Tell the ledger the worker is alive at least this often when nothing else was sent
    /// (progress reports count as heartbeats); more often, a third of the run's heartbeat
    /// timeout, when that is shorter.
    pub heartbeat_every: Duration,
}

impl Default for WorkerOptions {
    /// A report a second or every 100 items, a heartbeat every 10 seconds.
    fn default() -> Self {
        Self {
            flush_every: Duration::from_secs(1),
            flush_at_items: 100,
            heartbeat_every: Duration::from_secs(10),
        }
    }
}

/// The handle of one running run. See the module documentation.
#[derive(Debug)]
pub struct RunWorker {
    reporter: Reporter,
    flush_at_items: u64,
    background: Option<JoinHandle<()>>,
    /// Whether the run needs nothing more from this handle (completed, or released).
    completed: bool,
}

/// What the handle and its task share: where to send, and what is waiting to be sent.
#[derive(Debug, Clone)]
struct Reporter {
    client: Client,
    tenant: i64,
    run_id: Uuid,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    /// Held while a report is sent, so reports leave one at a time, in order.
    sending: tokio::sync::Mutex<()>,
    flush_now: Notify,
    cancel_requested: AtomicBool,
}

#[derive(Debug)]
struct Pending {
    /// Increments gathered since the last batch was cut.
    batch: ProgressBody,
    /// A batch cut and sent whose answer did not arrive: sent again, with its key, first.
    unanswered: Option<(String, ProgressBody)>,
    /// When the ledger last heard from this worker.
    last_sent: Instant,
    /// What the handle knows of the run from the ledger's answers: `None` until the first.
    run: Option<RunTerms>,
}

/// What the handle learned of its run from the last answer.
#[derive(Debug, Clone, Copy)]
struct RunTerms {
    /// The run's heartbeat timeout, if it has one.
    heartbeat_timeout: Option<Duration>,
    /// Whether the run has completed (a heartbeat then has nothing to keep alive).
    done: bool,
}

impl RunTerms {
    fn of(run: &OperationRun) -> Self {
        Self {
            heartbeat_timeout: run
                .limits
                .as_ref()
                .and_then(|limits| limits.heartbeat_timeout_seconds)
                .map(|seconds| Duration::from_secs(seconds.into())),
            done: run.done,
        }
    }
}

/// How long the worker may stay quiet: `heartbeat_every`, or a third of the run's heartbeat
/// timeout when that is shorter (two heartbeats may be lost or late before the run times out).
fn heartbeat_interval(every: Duration, run: Option<RunTerms>) -> Duration {
    match run.and_then(|run| run.heartbeat_timeout) {
        Some(timeout) => every.min(timeout / 3),
        None => every,
    }
}

fn is_empty(body: &ProgressBody) -> bool {
    body.success == 0
        && body.failed == 0
        && body.skipped == 0
        && body.total.is_none()
        && body.failures.is_empty()
}

fn items(body: &ProgressBody) -> u64 {
    body.success + body.failed + body.skipped
}

impl Client {
    /// Starts the queued run `run_id` and returns its handle.
    ///
    /// Call it inside a tokio runtime: the handle's task runs on it.
    ///
    /// # Errors
    /// What starting the run answered: 404 for no such run, 409 when it is not queued.
    pub async fn start_worker(
        &self,
        tenant: i64,
        run_id: Uuid,
        options: WorkerOptions,
    ) -> Result<RunWorker, ClientError> {
        let started = self.start_run(tenant, run_id).await?;
        let worker = self.worker(tenant, run_id, options);
        worker.note_answer(&started);
        Ok(worker)
    }

    /// The handle of a run that is already running (started by this worker earlier, or
    /// re-delivered to it).
    ///
    /// Call it inside a tokio runtime: the handle's task runs on it.
    pub fn worker(&self, tenant: i64, run_id: Uuid, options: WorkerOptions) -> RunWorker {
        let reporter = Reporter {
            client: self.clone(),
            tenant,
            run_id,
            shared: Arc::new(Shared {
                pending: Mutex::new(Pending {
                    batch: ProgressBody::default(),
                    unanswered: None,
                    last_sent: Instant::now(),
                    run: None,
                }),
                sending: tokio::sync::Mutex::new(()),
                flush_now: Notify::new(),
                cancel_requested: AtomicBool::new(false),
            }),
        };
        let background = tokio::spawn(reporter.clone().report(options.clone()));
        RunWorker {
            reporter,
            flush_at_items: options.flush_at_items,
            background: Some(background),
            completed: false,
        }
    }
}

impl RunWorker {
    /// The run's id.
    pub fn run_id(&self) -> Uuid {
        self.reporter.run_id
    }

    /// Counts `n` items that succeeded.
    pub fn succeeded(&self, n: u64) {
        self.add(|batch| batch.success += n);
    }

    /// Counts `n` items that failed (without a failure entry; see [`RunWorker::item_failed`]).
    pub fn failed(&self, n: u64) {
        self.add(|batch| batch.failed += n);
    }

    /// Counts `n` items skipped.
    pub fn skipped(&self, n: u64) {
        self.add(|batch| batch.skipped += n);
    }

    /// Counts one failed item, with its failure (`code`, e.g. `graph.throttled`, and a message;
    /// the ledger strips secrets from it) for the run's failure summary.
    pub fn item_failed(&self, code: &str, message: &str) {
        self.add(|batch| {
            batch.failed += 1;
            add_failure(batch, code, message);
        });
    }

    /// Sets or raises the total number of items.
    pub fn set_total(&self, total: u64) {
        self.add(|batch| batch.total = Some(batch.total.map_or(total, |t| t.max(total))));
    }

    /// Whether someone asked to cancel the run, as the last answer said: stop, and complete it
    /// with [`Outcome::Cancelled`].
    pub fn cancel_requested(&self) -> bool {
        self.reporter
            .shared
            .cancel_requested
            .load(Ordering::Relaxed)
    }

    /// Sends what has gathered now (the handle's task does so on its own by time and size).
    ///
    /// # Errors
    /// What the report answered. A batch the ledger refused for good (422: counts past the
    /// total) is dropped; one whose answer was lost is kept and sent again, with its key.
    pub async fn flush(&self) -> Result<(), ClientError> {
        self.reporter.flush().await
    }

    /// Sends what has gathered and completes the run: with `outcome`, or the one its counts
    /// and failures give.
    ///
    /// # Errors
    /// What the last report or the completion answered; the handle is then still open (and, if
    /// dropped, fails the run).
    pub async fn complete(
        mut self,
        outcome: Option<Outcome>,
    ) -> Result<CommandAnswer, ClientError> {
        self.reporter.flush().await?;
        let answer = self.reporter.complete(outcome).await?;
        self.completed = true;
        Ok(answer)
    }

    /// Sends what has gathered and lets the handle go without completing the run: for a run
    /// that several workers share, whose completion is another's.
    ///
    /// # Errors
    /// What the last report answered; the handle is then still open.
    pub async fn release(mut self) -> Result<(), ClientError> {
        self.reporter.flush().await?;
        self.completed = true;
        Ok(())
    }

    /// Completes the run `failed` with one failure entry (`code`, `message`), after what has
    /// gathered.
    ///
    /// # Errors
    /// As [`RunWorker::complete`].
    pub async fn fail(self, code: &str, message: &str) -> Result<CommandAnswer, ClientError> {
        self.add(|batch| add_failure(batch, code, message));
        self.complete(Some(Outcome::Failed)).await
    }

    fn add(&self, change: impl FnOnce(&mut ProgressBody)) {
        let gathered = {
            let mut pending = self.reporter.lock();
            change(&mut pending.batch);
            items(&pending.batch)
        };
        if gathered >= self.flush_at_items {
            self.reporter.shared.flush_now.notify_one();
        }
    }

    fn note_answer(&self, answer: &CommandAnswer) {
        self.reporter.note_answer(answer);
    }
}

/// Adds a failure to a batch, merged with the batch's entry of the same code.
fn add_failure(batch: &mut ProgressBody, code: &str, message: &str) {
    match batch.failures.iter_mut().find(|f| f.code == code) {
        Some(entry) => {
            entry.count = Some(entry.count.unwrap_or(1) + 1);
            message.clone_into(&mut entry.message);
        }
        None => batch.failures.push(FailureBody {
            code: code.to_owned(),
            message: message.to_owned(),
            count: None,
        }),
    }
}

impl Drop for RunWorker {
    fn drop(&mut self) {
        if let Some(background) = self.background.take() {
            // A report it was sending stays unanswered in `pending`, with its key.
            background.abort();
        }
        if self.completed {
            return;
        }
        let code = if std::thread::panicking() {
            WORKER_PANICKED
        } else {
            WORKER_DROPPED
        };
        let reporter = self.reporter.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(reporter.abandon(code));
            }
            Err(_) => tracing::error!(
                run = %reporter.run_id,
                code,
                "a run's worker handle was dropped outside a tokio runtime: the run stays running until its limits end it"
            ),
        }
    }
}

impl Reporter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Every change under the lock is whole (a field set, a batch swapped), so a panic
        // elsewhere while it was held leaves it sound.
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn note_answer(&self, answer: &CommandAnswer) {
        self.note_run(&answer.run, answer.run.is_cancel_requested());
    }

    /// Remembers what an answer said of the run: whether to cancel, its terms, and that the
    /// ledger heard from the worker now.
    fn note_run(&self, run: &OperationRun, cancel_requested: bool) {
        self.shared
            .cancel_requested
            .store(cancel_requested, Ordering::Relaxed);
        let mut pending = self.lock();
        pending.last_sent = Instant::now();
        pending.run = Some(RunTerms::of(run));
    }

    /// The handle's task: reports by time and size, and heartbeats, until the handle goes.
    ///
    /// A handle made for a run already running ([`Client::worker`]) knows nothing of it yet: its
    /// first heartbeat, at once, tells it the run's heartbeat timeout and any cancel request.
    async fn report(self, options: WorkerOptions) {
        if self.lock().run.is_none() {
            self.heartbeat_logged().await;
        }
        // A heartbeat that failed is tried again an interval later, not at every turn.
        let mut last_try = Instant::now();
        loop {
            let (quiet, run) = self.quiet();
            let interval = heartbeat_interval(options.heartbeat_every, run);
            let beat_in = if run.is_some_and(|run| run.done) {
                options.flush_every
            } else {
                interval
                    .saturating_sub(quiet)
                    .max(interval.saturating_sub(last_try.elapsed()))
            };
            tokio::select! {
                () = tokio::time::sleep(options.flush_every.min(beat_in)) => {}
                () = self.shared.flush_now.notified() => {}
            }
            if let Err(error) = self.flush().await {
                tracing::warn!(run = %self.run_id, %error, "progress report failed; it is sent again at the next flush");
            }
            let (quiet, run) = self.quiet();
            let interval = heartbeat_interval(options.heartbeat_every, run);
            let done = run.is_some_and(|run| run.done);
            if !done && quiet >= interval && last_try.elapsed() >= interval {
                last_try = Instant::now();
                self.heartbeat_logged().await;
            }
        }
    }

    /// How long since the ledger last heard from the worker, and what the handle knows of the
    /// run.
    fn quiet(&self) -> (Duration, Option<RunTerms>) {
        let pending = self.lock();
        (pending.last_sent.elapsed(), pending.run)
    }

    async fn heartbeat_logged(&self) {
        if let Err(error) = self.heartbeat().await {
            tracing::warn!(run = %self.run_id, %error, "heartbeat failed; the next is sent at the next interval");
        }
    }

    /// Tells the ledger the worker is alive (`POST …/heartbeat`: not an event) and notes the
    /// answer: a cancel request, the run's terms. A run that has completed answers 409
    /// `run-completed`: the handle then stops heartbeating.
    async fn heartbeat(&self) -> Result<(), ClientError> {
        match self.client.heartbeat(self.tenant, self.run_id).await {
            Ok(answer) => {
                self.note_run(&answer.run, answer.cancel_requested);
                Ok(())
            }
            Err(error) => {
                if error
                    .problem()
                    .is_some_and(|problem| problem.slug() == "run-completed")
                {
                    let mut pending = self.lock();
                    let heartbeat_timeout = pending.run.and_then(|run| run.heartbeat_timeout);
                    pending.run = Some(RunTerms {
                        heartbeat_timeout,
                        done: true,
                    });
                }
                Err(error)
            }
        }
    }

    async fn flush(&self) -> Result<(), ClientError> {
        let _sending = self.shared.sending.lock().await;
        // At most two reports: the unanswered one, then what gathered meanwhile; what gathers
        // during those waits for the next flush, so a busy worker cannot keep this loop going.
        for _ in 0..2 {
            let Some((key, body)) = self.next_report() else {
                return Ok(());
            };
            let request = self
                .client
                .run_command(self.tenant, self.run_id, "progress", &body)?
                .with_key(key);
            match self.client.send_command(&request).await {
                Ok(answer) => {
                    self.lock().unanswered = None;
                    self.note_answer(&answer);
                }
                Err(error) => {
                    if error
                        .status()
                        .is_some_and(|status| (400..500).contains(&status))
                    {
                        // Refused for good: the same report would be refused again.
                        self.lock().unanswered = None;
                    }
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// The report to send next: the unanswered one, else the gathered batch, cut now under a
    /// fresh key (and kept as unanswered until its answer arrives).
    fn next_report(&self) -> Option<(String, ProgressBody)> {
        let mut pending = self.lock();
        if let Some(unanswered) = &pending.unanswered {
            return Some(unanswered.clone());
        }
        if is_empty(&pending.batch) {
            return None;
        }
        let batch = std::mem::take(&mut pending.batch);
        pending.unanswered = Some((fresh_key(), batch.clone()));
        pending.unanswered.clone()
    }

    async fn complete(&self, outcome: Option<Outcome>) -> Result<CommandAnswer, ClientError> {
        let body = CompleteBody {
            outcome: outcome.map(|o| o.as_str().to_owned()),
            ..CompleteBody::default()
        };
        self.client
            .complete_run(self.tenant, self.run_id, &body)
            .await
    }

    /// Completes the run of a dropped handle `failed` with `code`, after what it had gathered.
    async fn abandon(self, code: &'static str) {
        let message = match code {
            WORKER_PANICKED => "the worker panicked before completing the run",
            _ => "the worker's handle was dropped before it completed the run",
        };
        add_failure(&mut self.lock().batch, code, message);
        if let Err(error) = self.flush().await {
            tracing::warn!(run = %self.run_id, %error, "the last progress report of a dropped worker failed");
        }
        match self.complete(Some(Outcome::Failed)).await {
            Ok(_) => {
                tracing::warn!(run = %self.run_id, code, "run completed failed: its worker went away")
            }
            Err(error) => {
                tracing::error!(run = %self.run_id, code, %error, "could not complete the run of a dropped worker")
            }
        }
    }
}
