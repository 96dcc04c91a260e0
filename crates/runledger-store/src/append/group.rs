//! The group writer: one task per lane of an [`super::EventWriter`], which owns a connection and
//! commits the appends queued while it was busy as one group, one read and one atomic write.
//!
//! The task takes whatever is queued when it becomes free (up to the group limits), so an append
//! that is alone is written at once and appends that arrive during a commit share the next one;
//! an optional linger waits a little longer for more. Every member keeps its own outcome: the
//! plan answers conflicts, replays and dedupe hits from the read, the write's compare-and-sets
//! let each run land or not on its own, and a member that lost a race goes back to the queue.
//!
//! Failures: a statement that fails for a reason other than a lost connection is retried with
//! every member alone, so only the member it belongs to sees it. A connection lost (or a round
//! trip timed out) before the write was sent wrote nothing; after, the write's members are
//! *uncertain* and go back to the queue on a fresh connection, where the next read finds their
//! event ids (committed) or does not (then the compare-and-set makes writing them again safe, even
//! if the old transaction is still running). Only when the database cannot be reached again do
//! they answer [`StoreError::OutcomeUnknown`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::known::{ESTIMATE_BOUND, Known};
use super::plan::{self, Fate, MAX_ATTEMPTS, Pending};
use super::statement::{self, GroupRead, WRITER_SESSION};
use super::{AppendOutcome, Appended, WriterConfig, WriterStats};
use crate::error::StoreError;
use crate::read::into_events;
use crate::schema::RecordedEvent;

/// An append handed to the writer task, with where to send its outcome.
pub(super) struct Request {
    pub(super) pending: Pending,
    pub(super) reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// A queued append: the request and how the writer has fared with it so far.
struct Member {
    pending: Pending,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    /// Written in a group of its own, because a group it was part of failed.
    solo: bool,
}

impl Member {
    fn answer(self, outcome: Result<AppendOutcome, StoreError>) {
        // A caller that has gone away (a dropped future) needs no answer.
        let _ = self.reply.send(outcome);
    }
}

/// The writer's counters, shared with its handles.
#[derive(Debug, Default)]
pub(super) struct Counters {
    groups: AtomicU64,
    appends: AtomicU64,
    events: AtomicU64,
    largest_group: AtomicU64,
    connections: AtomicU64,
    unread_groups: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> WriterStats {
        WriterStats {
            groups: self.groups.load(Ordering::Relaxed),
            appends: self.appends.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            largest_group: self.largest_group.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            unread_groups: self.unread_groups.load(Ordering::Relaxed),
        }
    }
}

/// Starts the writer task; it ends when every sender is dropped and its queue is empty.
pub(super) fn spawn(
    pool: PgPool,
    config: WriterConfig,
    counters: Arc<Counters>,
) -> mpsc::UnboundedSender<Request> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let writer = GroupWriter {
        pool,
        config,
        counters,
        connection: None,
        lost_backend: None,
        backlog: VecDeque::new(),
        known: Known::new(),
    };
    tokio::spawn(writer.run(receiver));
    sender
}

/// The writer's connection, taken out of the pool for good so that no acquire pings it.
struct Connection {
    conn: PgConnection,
    /// Its server process, to stop it should the connection be lost mid-statement.
    backend: i32,
}

struct GroupWriter {
    pool: PgPool,
    config: WriterConfig,
    counters: Arc<Counters>,
    connection: Option<Connection>,
    /// The server process of a connection lost while a statement ran, which may still run it.
    lost_backend: Option<i32>,
    /// Appends waiting for a group, in arrival order (those sent back by a group first).
    backlog: VecDeque<Member>,
    /// Heads and the clock as the lane last saw them, to write without a read.
    known: Known,
}

/// One round trip on the writer's connection (connecting first if need be), bounded by the
/// statement timeout.
macro_rules! round_trip {
    ($writer:expr, |$conn:ident| $statement:expr) => {{
        let timeout = $writer.config.statement_timeout;
        match $writer.connection().await {
            Err(error) => Err(Failure::Unreachable(error)),
            Ok($conn) => {
                let result = tokio::time::timeout(timeout, $statement).await;
                $writer.settle(result)
            }
        }
    }};
}

/// Why a round trip did not answer.
enum Failure {
    /// There is no connection and none could be opened: nothing was sent.
    Unreachable(sqlx::Error),
    /// The connection broke or the round trip timed out: the connection is gone.
    Lost(sqlx::Error),
    /// The statement failed; the connection is fine.
    Statement(sqlx::Error),
}

/// Why a group read gave no answer.
enum Unread {
    RoundTrip(Failure),
    /// Stored events that cannot be decoded.
    Undecodable(StoreError),
}

impl GroupWriter {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        loop {
            if self.backlog.is_empty() {
                let Some(request) = requests.recv().await else {
                    break;
                };
                self.push(request);
                self.linger(&mut requests).await;
            }
            while !self.full()
                && let Ok(request) = requests.try_recv()
            {
                self.push(request);
            }
            let group = self.take_group();
            self.commit(group).await;
        }
        if let Some(connection) = self.connection.take() {
            let _ = sqlx::Connection::close(connection.conn).await;
        }
    }

    fn push(&mut self, request: Request) {
        self.backlog.push_back(Member {
            pending: request.pending,
            reply: request.reply,
            solo: false,
        });
    }

    /// Waits up to the linger for more appends to join the first one, unless the group fills.
    async fn linger(&mut self, requests: &mut mpsc::UnboundedReceiver<Request>) {
        if self.config.linger.is_zero() {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.config.linger;
        while !self.full() {
            match tokio::time::timeout_at(deadline, requests.recv()).await {
                Ok(Some(request)) => self.push(request),
                Ok(None) | Err(_) => break,
            }
        }
    }

    fn full(&self) -> bool {
        self.backlog.len() >= self.config.max_group_appends
            || self
                .backlog
                .iter()
                .map(|m| m.pending.events.len())
                .sum::<usize>()
                >= self.config.max_group_events
    }

    /// The next group: the front of the backlog up to the limits, or a solo member alone.
    fn take_group(&mut self) -> Vec<Member> {
        let mut group = Vec::new();
        let mut events = 0;
        while let Some(front) = self.backlog.front() {
            let size = front.pending.events.len();
            let fits = group.len() < self.config.max_group_appends
                && events + size <= self.config.max_group_events;
            if !group.is_empty() && (front.solo || !fits) {
                break;
            }
            let member = self.backlog.pop_front().unwrap_or_else(|| unreachable!());
            events += size;
            let solo = member.solo;
            group.push(member);
            if solo {
                break;
            }
        }
        group
    }

    /// Sends members back to the front of the queue, keeping their order.
    fn requeue(&mut self, members: Vec<Member>) {
        for member in members.into_iter().rev() {
            self.backlog.push_front(member);
        }
    }

    /// The writer's connection, connecting (bounded by the connect timeout) if it has none.
    async fn connection(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        if self.connection.is_none() {
            let connection = tokio::time::timeout(self.config.connect_timeout, self.connect())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??;
            self.counters.connections.fetch_add(1, Ordering::Relaxed);
            self.connection = Some(connection);
        }
        match &mut self.connection {
            Some(connection) => Ok(&mut connection.conn),
            None => unreachable!("connected above"),
        }
    }

    async fn connect(&mut self) -> Result<Connection, sqlx::Error> {
        // Through the pool, so that its connect options and `after_connect` (a role, a search
        // path) apply; then detached, so that it is the writer's alone and the pool may open
        // another in its place.
        self.known.forget_all();
        let mut conn = self.pool.acquire().await?.detach();
        let (_, _, backend): (String, String, i32) =
            sqlx::query_as(WRITER_SESSION).fetch_one(&mut conn).await?;
        if let Some(lost) = self.lost_backend.take() {
            // A statement of the lost connection may still be running (the server has not
            // noticed yet): stop it, so it holds no row lock the next write waits for. Best
            // effort: without the right to, the compare-and-set still keeps the outcome sound.
            if let Err(error) = sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(lost)
                .execute(&mut conn)
                .await
            {
                tracing::debug!(%error, "could not stop the lost connection's server process");
            }
        }
        Ok(Connection { conn, backend })
    }

    /// The outcome of one round trip: a broken connection or a timeout gives the connection up.
    fn settle<T>(
        &mut self,
        result: Result<Result<T, sqlx::Error>, tokio::time::error::Elapsed>,
    ) -> Result<T, Failure> {
        let error = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) if !crate::error::connection_lost(&error) => {
                return Err(Failure::Statement(error));
            }
            Ok(Err(error)) => error,
            Err(_) => sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the writer's round trip timed out",
            )),
        };
        self.lost_backend = self.connection.take().map(|c| c.backend);
        Err(Failure::Lost(error))
    }

    /// Commits one group and answers (or requeues) every member.
    async fn commit(&mut self, group: Vec<Member>) {
        let known = if group.iter().any(|m| m.solo) {
            None
        } else {
            let pending: Vec<&Pending> = group.iter().map(|m| &m.pending).collect();
            self.known.read_for(&pending)
        };
        let (read, stored, estimated) = match known {
            Some(read) => (read, Vec::new(), true),
            None => match self.read(&group).await {
                Ok((read, stored)) => (read, stored, false),
                Err(Unread::RoundTrip(failure)) => {
                    return self.failed_before_write(group, failure).await;
                }
                Err(Unread::Undecodable(error)) => return self.failed_alone(group, error),
            },
        };
        self.counters.groups.fetch_add(1, Ordering::Relaxed);
        if estimated {
            self.counters.unread_groups.fetch_add(1, Ordering::Relaxed);
        }
        self.counters
            .largest_group
            .fetch_max(group.len() as u64, Ordering::Relaxed);

        let pending: Vec<&Pending> = group.iter().map(|m| &m.pending).collect();
        let plan = plan::plan(&pending, &read, &stored);
        // Members still in `group` after this group are sent back to the queue, in order.
        let mut group: Vec<Option<Member>> = group.into_iter().map(Some).collect();
        for (slot, fate) in group.iter_mut().zip(plan.fates) {
            let Fate::Answer(outcome) = fate else {
                continue;
            };
            if estimated {
                // Decided on what the lane knew, not on what the database holds: answered only
                // after a read.
                if let Some(member) = slot {
                    member.pending.attempts += 1;
                }
            } else if let Some(member) = slot.take() {
                self.answered(member, outcome);
            }
        }
        if !plan.writes.is_empty() {
            let bound = estimated.then_some(ESTIMATE_BOUND);
            let written = round_trip!(self, |conn| statement::write_group(
                conn,
                &plan.runs,
                read.now,
                bound,
                &plan.events
            ));
            let members = plan.writes.iter().flat_map(|w| w.members.iter().copied());
            match written {
                Ok(inserted) => {
                    if let Some(first) = inserted.first() {
                        self.known.saw_clock(first.now);
                    }
                    let positions: HashMap<(Uuid, i64), i64> = inserted
                        .iter()
                        .map(|i| ((i.run_id, i.version), i.position))
                        .collect();
                    for (column, write) in plan.writes.iter().enumerate() {
                        let run = write.run.as_uuid();
                        let landed = positions.contains_key(&(run, write.first_version));
                        if landed {
                            let columns = &plan.runs;
                            self.known.saw_head(
                                run,
                                columns.tenant_ids[column],
                                columns.to_versions[column],
                                &columns.last_hashes[column],
                            );
                        } else {
                            self.known.forget(run);
                        }
                        for &index in &write.members {
                            if landed && let Some(member) = group[index].take() {
                                self.counters.events.fetch_add(
                                    member.pending.events.len() as u64,
                                    Ordering::Relaxed,
                                );
                                let appended = appended(&member.pending, &positions);
                                self.answered(member, Ok(AppendOutcome::Appended(appended)));
                            } else if let Some(member) = &mut group[index] {
                                // Its run's head moved, or its slot was taken, since the read
                                // (or since the lane last knew it).
                                member.pending.attempts += 1;
                            }
                        }
                    }
                }
                Err(Failure::Statement(error)) if estimated => {
                    // Written on what the lane knew: a stored event id or a run that exists
                    // after all. Decided again after a read, together.
                    tracing::debug!(%error, "a group written without a read failed; it is read");
                    for index in members {
                        if let Some(member) = &mut group[index] {
                            self.known.forget(member.pending.run.as_uuid());
                            member.pending.attempts += 1;
                        }
                    }
                }
                Err(Failure::Statement(error)) => {
                    let indexes: Vec<usize> = members.collect();
                    if let [index] = indexes[..]
                        && group[index].as_ref().is_some_and(|m| m.solo)
                        && !lost_a_race(&error)
                    {
                        if let Some(member) = group[index].take() {
                            self.answered(member, Err(StoreError::Database(error)));
                        }
                    } else {
                        tracing::debug!(%error, "a group write failed; its appends are retried alone");
                        for index in indexes {
                            if let Some(member) = &mut group[index] {
                                member.solo = true;
                                member.pending.attempts += 1;
                            }
                        }
                    }
                }
                Err(Failure::Unreachable(error)) => {
                    tracing::warn!(%error, "the writer cannot reach the database");
                    return self.unreachable(group.into_iter().flatten().collect());
                }
                Err(Failure::Lost(error)) => {
                    tracing::warn!(%error, "the writer's connection was lost while a group committed");
                    for index in members {
                        if let Some(member) = &mut group[index] {
                            member.pending.uncertain = true;
                            member.pending.attempts += 1;
                        }
                    }
                    if self.connection().await.is_err() {
                        return self.unreachable(group.into_iter().flatten().collect());
                    }
                }
            }
        }
        self.requeue(group.into_iter().flatten().collect());
    }

    /// The group read, and the stored events it found, on the writer's connection.
    async fn read(&mut self, group: &[Member]) -> Result<(GroupRead, Vec<RecordedEvent>), Unread> {
        let keys = plan::keys(group.iter().map(|m| &m.pending));
        let read = round_trip!(self, |conn| statement::read_group(conn, &keys))
            .map_err(Unread::RoundTrip)?;
        self.known.saw_read(&read);
        if read.stored_ids.is_empty() {
            return Ok((read, Vec::new()));
        }
        let ids = read.stored_ids.clone();
        let rows = round_trip!(self, |conn| statement::read_stored(conn, &ids))
            .map_err(Unread::RoundTrip)?;
        let stored = into_events(rows).map_err(Unread::Undecodable)?;
        Ok((read, stored))
    }

    fn answered(&self, member: Member, outcome: Result<AppendOutcome, StoreError>) {
        self.counters.appends.fetch_add(1, Ordering::Relaxed);
        member.answer(outcome);
    }

    /// A read failed: nothing was written.
    async fn failed_before_write(&mut self, mut group: Vec<Member>, failure: Failure) {
        match failure {
            Failure::Lost(error) => {
                tracing::warn!(%error, "the writer's connection to the database is lost");
                for member in &mut group {
                    member.pending.attempts += 1;
                }
                let exhausted = group.iter().any(|m| m.pending.attempts >= MAX_ATTEMPTS);
                if exhausted || self.connection().await.is_err() {
                    return self.unreachable(group);
                }
                self.requeue(group);
            }
            Failure::Unreachable(error) => {
                tracing::warn!(%error, "the writer cannot reach the database");
                self.unreachable(group);
            }
            Failure::Statement(error) => self.failed_alone(group, StoreError::Database(error)),
        }
    }

    /// A statement failed for a reason of its own: answer it if the group is one append, else
    /// try each append alone so that only the one it belongs to sees it.
    fn failed_alone(&mut self, mut group: Vec<Member>, error: StoreError) {
        if group.len() == 1 {
            return self.answered(group.remove(0), Err(error));
        }
        tracing::debug!(%error, "a group's statement failed; its appends are retried alone");
        for member in &mut group {
            member.solo = true;
        }
        self.requeue(group);
    }

    /// The database cannot be reached: every member answers now.
    fn unreachable(&mut self, members: Vec<Member>) {
        for member in members {
            let error = if member.pending.uncertain {
                StoreError::OutcomeUnknown
            } else {
                StoreError::Database(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "the writer cannot reach the database",
                )))
            };
            self.answered(member, Err(error));
        }
    }
}

/// The result of a member whose run landed, from the positions the write returned.
fn appended(member: &Pending, positions: &HashMap<(Uuid, i64), i64>) -> Appended {
    let run = member.run.as_uuid();
    let versions = member.expected + 1..=member.expected + member.events.len() as u64;
    Appended {
        positions: versions
            .clone()
            .filter_map(|version| {
                let version = i64::try_from(version).ok()?;
                positions.get(&(run, version)).copied()
            })
            .collect(),
        version: *versions.end(),
        replayed: false,
    }
}

/// Whether a failed write lost a race that a fresh read resolves: a concurrent writer created
/// the run or stored the same event ids first, or the transaction was chosen to abort.
fn lost_a_race(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    let raced = db.is_unique_violation()
        && matches!(
            db.constraint(),
            Some("streams_pkey" | "events_run_version_key" | "events_event_id_key")
        );
    // 40001: serialization failure; 40P01: deadlock detected.
    raced || matches!(db.code().as_deref(), Some("40001" | "40P01"))
}
