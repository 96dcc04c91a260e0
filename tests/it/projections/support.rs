//! Support for the projection tests: random valid histories appended through the store, the
//! expected rows folded from the log, and projectors driven to the end of the log.

use std::collections::BTreeMap;
use std::time::Duration;

use runledger_core::{
    Complete, DispatchFailed, FailureCode, FailureReport, Initiator, Outcome, ProgressDelta,
    QueueRun, ReportProgress, Run, RunCommand, RunId, RunIdentity, RunType, Start, TenantId,
    UserId, decide, evolve,
};
use runledger_projections::{OperationRuns, Projection, Projector, ProjectorOptions, StepOutcome};
use runledger_store::command::fold;
use runledger_store::{AppendOutcome, EventMetadata, NewEvent};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::verbs::{at, new_event_id};
use crate::helpers::{LOG_WAIT, TestStore};

/// Options for tests: small batches (so histories span many), a short poll, no grace period.
pub(crate) fn options() -> ProjectorOptions {
    ProjectorOptions {
        batch_size: 16,
        poll: Duration::from_millis(50),
        lease: runledger_store::DEFAULT_LEASE_DURATION,
        retired_grace: Duration::ZERO,
        fail_point: None,
    }
}

/// A projector of the OperationRun read model with the test options.
pub(crate) fn run_projector(pool: &PgPool) -> Projector<OperationRuns> {
    Projector::new(pool.clone(), OperationRuns::new(), options())
}

/// Steps `projector` until it has read every committed event: past events held back by
/// transactions still running anywhere in the cluster, and past a standby moment while a
/// previous leader's session ends. Returns the last outcome (`CaughtUp` or `Halted`).
pub(crate) async fn drain<P: Projection>(projector: &mut Projector<P>) -> StepOutcome {
    tokio::time::timeout(LOG_WAIT, async {
        loop {
            let outcome = projector.catch_up().await.expect("the projector steps");
            match outcome {
                StepOutcome::CaughtUp => {
                    if !projector
                        .has_unread_events()
                        .await
                        .expect("look for unread events")
                    {
                        return outcome;
                    }
                }
                StepOutcome::NotLeader => {}
                other => return other,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the projector reached the end of the log")
}

/// A run's history as it is generated: its state and what comes next.
struct Generated {
    tenant: TenantId,
    run: RunId,
    state: Run,
    clock: i64,
}

const RUN_TYPES: [&str; 3] = [
    "inventory.sync",
    "restore.execute",
    "backup.policy_snapshot",
];

/// The next command of a run, at random but valid in its state; `None` when it has completed.
fn next_command(rng: &mut fastrand::Rng, generated: &mut Generated) -> Option<RunCommand> {
    generated.clock += 1 + rng.i64(0..5);
    let now = at(generated.clock);
    let snapshot = match generated.state.snapshot() {
        None => {
            let initiator = if rng.bool() {
                let user = UserId::new(rng.i64(1..20)).expect("positive user");
                Initiator::user(user, &format!("User {user}")).expect("valid name")
            } else {
                Initiator::system()
            };
            return Some(RunCommand::Queue(QueueRun {
                run_id: generated.run,
                tenant_id: generated.tenant,
                run_type: RunType::parse(RUN_TYPES[rng.usize(..RUN_TYPES.len())])
                    .expect("valid type"),
                identity: RunIdentity::new(json!({ "run": generated.run.to_string() }))
                    .expect("valid identity"),
                initiator,
                context: json!({ "source": "test", "n": rng.u32(..100) }),
                limits: runledger_core::RunLimits::default(),
                at: now,
            }));
        }
        Some(snapshot) => snapshot,
    };
    let failure = |rng: &mut fastrand::Rng| FailureReport {
        code: FailureCode::parse(["graph.throttled", "io", "denied"][rng.usize(..3)])
            .expect("valid code"),
        message: format!("failure {} token=abc", rng.u32(..1000)),
        count: rng.u64(1..3),
    };
    Some(match snapshot.status {
        runledger_core::RunStatus::Queued if rng.u8(..10) == 0 => {
            RunCommand::DispatchFailed(DispatchFailed {
                failure: failure(rng),
                at: now,
            })
        }
        runledger_core::RunStatus::Queued => RunCommand::Start(Start {
            worker: None,
            at: now,
        }),
        runledger_core::RunStatus::Running if rng.u8(..4) == 0 => RunCommand::Complete(Complete {
            outcome: [None, Some(Outcome::Succeeded), Some(Outcome::Failed)][rng.usize(..3)],
            final_counts: None,
            failures: Vec::new(),
            at: now,
        }),
        runledger_core::RunStatus::Running => {
            let counts = snapshot.summary_counts;
            let failed = rng.u64(0..2);
            // Reports never pass the total: raise it when little room is left.
            let room = counts.total.map_or(0, |total| total - counts.processed());
            RunCommand::ReportProgress(ReportProgress {
                delta: ProgressDelta {
                    success: rng.u64(1..3),
                    failed,
                    skipped: rng.u64(0..2),
                },
                total: (room < 4).then(|| counts.processed() + 4 + rng.u64(0..30)),
                failures: (0..failed).map(|_| failure(rng)).collect(),
                at: now,
            })
        }
        runledger_core::RunStatus::Completed => return None,
    })
}

/// Appends random, valid histories of `runs` runs over `tenants` tenants, interleaved, with one
/// to three commands' events per append. Returns the run ids.
pub(crate) async fn random_histories(
    store: &TestStore,
    seed: u64,
    runs: usize,
    tenants: i64,
) -> Vec<RunId> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut open: Vec<Generated> = (0..runs)
        .map(|_| Generated {
            tenant: TenantId::new(rng.i64(1..=tenants)).expect("positive tenant"),
            run: RunId::from_uuid(Uuid::from_u128(rng.u128(..))),
            state: Run::Unqueued,
            clock: 0,
        })
        .collect();
    let ids = open.iter().map(|g| g.run).collect();
    while !open.is_empty() {
        let index = rng.usize(..open.len());
        let generated = &mut open[index];
        let expected = generated.state.version();
        let mut events = Vec::new();
        for _ in 0..rng.usize(1..=3) {
            let Some(command) = next_command(&mut rng, generated) else {
                break;
            };
            for event in decide(&generated.state, command).expect("a valid command") {
                generated.state = evolve(std::mem::take(&mut generated.state), &event);
                events.push(NewEvent {
                    event_id: new_event_id(),
                    event,
                    metadata: EventMetadata::actor("test"),
                });
            }
        }
        if events.is_empty() {
            open.swap_remove(index);
            continue;
        }
        let outcome = store
            .writer
            .append(generated.tenant, generated.run, expected, &events)
            .await
            .expect("append a generated history");
        assert!(matches!(outcome, AppendOutcome::Appended(_)));
        // Some runs stay queued or running forever.
        if rng.u8(..20) == 0 {
            open.swap_remove(index);
        }
    }
    ids
}

/// Every run's expected read-model row, folded from its stream in the log with the domain's
/// `evolve`: the seed's OperationRun JSON, plus where its last event is.
pub(crate) async fn folded_runs(store: &TestStore) -> BTreeMap<Uuid, Value> {
    let runs: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT DISTINCT run_id, tenant_id FROM events ORDER BY run_id")
            .fetch_all(&store.pool)
            .await
            .expect("list runs");
    let mut folded = BTreeMap::new();
    for (run, tenant) in runs {
        let stream = store
            .reader
            .read_stream(TenantId::new(tenant).expect("tenant"), run.into())
            .await
            .expect("read a stream");
        let Some(snapshot) = fold(&stream).expect("fold").snapshot().cloned() else {
            continue;
        };
        let last = stream.last().expect("a stream has events");
        let mut json = snapshot.to_operation_run_json();
        without_lifecycle_fields(&mut json);
        json["last_position"] = json!(last.position);
        json["last_tx_id"] = json!(last.tx_id);
        json["last_event_at"] = json!(micros(last.recorded_at));
        folded.insert(run, json);
    }
    folded
}

/// Removes the keys of the OperationRun JSON that the read model does not hold yet: the
/// lifecycle fields of issue 13 come with its next version, and until then it is compared
/// without them.
pub(crate) fn without_lifecycle_fields(json: &mut Value) {
    if let Some(fields) = json.as_object_mut() {
        for key in runledger_core::operation_run::LIFECYCLE_FIELDS {
            fields.remove(key);
        }
    }
}

fn micros(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The read model as the public view shows it, in the JSON shape of [`folded_runs`], built in
/// SQL so that it shares no code with the projection.
pub(crate) async fn read_model(pool: &PgPool) -> BTreeMap<Uuid, Value> {
    let rows: Vec<(Uuid, Value)> = sqlx::query_as(
        r#"SELECT id, jsonb_build_object(
               'id', id::text, 'tenant_id', tenant_id, 'user_id', user_id,
               'initiator_name', initiator_name, 'type', type, 'status', status,
               'outcome', outcome, 'run_identity_hash', run_identity_hash, 'identity', identity,
               'summary_counts', summary_counts, 'failure_summary', failure_summary,
               'context', context,
               'started_at', to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'completed_at', to_char(completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'created_at', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'updated_at', to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'version', version, 'done', status = 'completed',
               'last_position', last_position, 'last_tx_id', last_tx_id,
               'last_event_at', to_char(last_event_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
           FROM public.operation_runs"#,
    )
    .fetch_all(pool)
    .await
    .expect("read the read model");
    rows.into_iter().collect()
}

/// Every row of a public view, whole, ordered by id: for comparing two builds exactly.
pub(crate) async fn view_rows(pool: &PgPool, view: &str) -> Vec<Value> {
    sqlx::query_scalar(&format!(
        "SELECT to_jsonb(v) FROM public.{view} v ORDER BY id"
    ))
    .fetch_all(pool)
    .await
    .expect("read a view")
}

/// Asserts the read model equals the fold of the log, run by run.
#[track_caller]
pub(crate) fn assert_same_runs(read_model: &BTreeMap<Uuid, Value>, folded: &BTreeMap<Uuid, Value>) {
    assert_eq!(
        read_model.keys().collect::<Vec<_>>(),
        folded.keys().collect::<Vec<_>>(),
        "the read model has a row for every run of the log, and no other"
    );
    for (run, expected) in folded {
        assert_eq!(&read_model[run], expected, "run {run}");
    }
}

/// The registry's count of events applied by the active version of `projection`.
pub(crate) async fn events_applied(pool: &PgPool, projection: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT events_applied FROM projection_versions WHERE projection = $1 AND status = 'active'",
    )
    .bind(projection)
    .fetch_one(pool)
    .await
    .expect("read the registry")
}

/// How many events the log holds.
pub(crate) async fn event_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .expect("count events")
}
