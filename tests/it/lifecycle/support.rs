//! Support for the lifecycle tests: an API on a manual clock, a writer's verbs over the real
//! router (queue with limits, start as a worker, heartbeat, progress, cancel, complete), the
//! sweeper stepped at the clock's time, and what the log holds of a run.

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use runledger_core::{Clock, ManualClock, TenantId};
use runledger_store::{CommandHandler, EventReader, EventWriter, RecordedEvent};
use runledger_sweeper::{SweepOutcome, SweepReport, Sweeper, SweeperConfig};
use serde_json::{Value, json};

use crate::api::support::{Tokens, run_path, runs_path};
use crate::api::{Answer, TestApi};
use crate::helpers::verbs::{at, tenant};

/// An API whose clock moves only when a test says, tenant 1's tokens, and a user to notify.
pub(crate) struct Lab {
    pub(crate) api: TestApi,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) tokens: Tokens,
    pub(crate) t: TenantId,
}

/// The user the lab's runs are initiated by (their notices go to this user's feed).
pub(crate) const USER: i64 = 7;

impl Lab {
    /// A fresh API at the fixed instant `at(0)`.
    pub(crate) async fn new() -> Self {
        let clock = Arc::new(ManualClock::new(at(0)));
        let api = TestApi::with_clock(Arc::clone(&clock) as Arc<dyn Clock>).await;
        let t = tenant(1);
        let tokens = api.tokens(t).await;
        Self {
            api,
            clock,
            tokens,
            t,
        }
    }

    /// Sets the clock to `seconds` after `at(0)`.
    pub(crate) fn at(&self, seconds: i64) {
        self.clock.set(at(seconds));
    }

    /// Sets the clock to `instant`.
    pub(crate) fn set(&self, instant: DateTime<Utc>) {
        self.clock.set(instant);
    }

    /// `POST` as the writer.
    pub(crate) async fn post(&self, path: &str, body: &Value) -> Answer {
        self.api.post(path, &self.tokens.writer, body).await
    }

    /// Queues an `inventory.sync` of `identity` with `extra` fields (limits, run_id…) merged
    /// into the body, initiated by [`USER`]; asserts it was created and returns its id.
    pub(crate) async fn queue(&self, identity: Value, extra: Value) -> String {
        let mut body = json!({
            "type": "inventory.sync",
            "identity": identity,
            "initiator": { "user_id": USER, "name": "Ahmed Darrazi" },
        });
        for (key, value) in extra.as_object().expect("extra fields").clone() {
            body[key] = value;
        }
        let answer = self.post(&runs_path(self.t), &body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:#}", answer.body);
        answer.body["run"]["id"].as_str().expect("an id").to_owned()
    }

    /// `POST …/{rest}` of run `id` with `body`.
    pub(crate) async fn command(&self, id: &str, rest: &str, body: &Value) -> Answer {
        self.post(&run_path(self.t, id, rest), body).await
    }

    /// Starts `id` as `worker`; asserts 200.
    pub(crate) async fn start(&self, id: &str, worker: &str) -> Answer {
        let answer = self
            .command(id, "/start", &json!({ "worker": worker }))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
        answer
    }

    /// A heartbeat of `id`.
    pub(crate) async fn heartbeat(&self, id: &str) -> Answer {
        self.command(id, "/heartbeat", &json!({})).await
    }

    /// The tenant's run `id` as the API shows it, once the projectors have applied the log.
    pub(crate) async fn shown(&self, id: &str) -> Value {
        self.api.project().await;
        let answer = self
            .api
            .get(&run_path(self.t, id, ""), &self.tokens.reader)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
        answer.body
    }

    /// The stored events of `id`.
    pub(crate) async fn events(&self, id: &str) -> Vec<RecordedEvent> {
        self.api
            .store
            .reader
            .read_stream(self.t, id.parse().expect("a run id"))
            .await
            .expect("read the run's events")
    }

    /// A sweeper over the lab's database, with its own command path (another writer, as in
    /// another process), reading the lab's clock.
    pub(crate) fn sweeper(&self) -> Sweeper {
        let pool = self.api.store.app_pool.clone();
        let commands = CommandHandler::new(
            EventReader::new(pool.clone()),
            EventWriter::new(pool.clone()),
        );
        Sweeper::new(
            pool,
            commands,
            Arc::clone(&self.clock) as Arc<dyn Clock>,
            SweeperConfig::default(),
        )
    }

    /// Brings the read model up to date, then one round of `sweeper` at the clock's time.
    pub(crate) async fn sweep(&self, sweeper: &mut Sweeper) -> SweepReport {
        self.api.project().await;
        match sweeper.step().await.expect("a sweeper round") {
            SweepOutcome::Swept(report) => report,
            SweepOutcome::NotLeader => panic!("the lab's sweeper leads"),
        }
    }
}

/// The stored types of `events`, in order.
pub(crate) fn types(events: &[RecordedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

/// How many of `events` are `Completed`.
pub(crate) fn completions(events: &[RecordedEvent]) -> usize {
    events
        .iter()
        .filter(|e| e.event_type == "Completed")
        .count()
}

/// RFC 3339 to the microsecond, as the API writes times.
pub(crate) fn micros(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// One nanosecond.
pub(crate) fn nanosecond() -> Duration {
    Duration::nanoseconds(1)
}
