//! The events the benches append, and the logs of whole runs they generate to measure over.

use chrono::Utc;
use futures_util::future::try_join_all;
use runledger_core::{
    CompletionReason, EventId, Initiator, Outcome, ProgressDelta, RunCompleted, RunEvent, RunId,
    RunIdentity, RunProgressed, RunQueued, RunStarted, RunType, TenantId, UserId,
};
use runledger_store::{EventMetadata, EventWriter, NewEvent};
use serde_json::json;
use uuid::Uuid;

/// `event` as the benches append it: a fresh time-ordered id, the actor `bench`.
pub(crate) fn bench_event(event: RunEvent) -> NewEvent {
    NewEvent {
        event_id: EventId::from_uuid(Uuid::now_v7()),
        event,
        metadata: EventMetadata::actor("bench"),
    }
}

/// A one-item progress event.
pub(crate) fn progressed() -> NewEvent {
    bench_event(RunEvent::Progressed(RunProgressed {
        delta: ProgressDelta {
            success: 1,
            failed: 0,
            skipped: 0,
        },
        total: None,
        failures: Vec::new(),
        reported_at: Utc::now(),
    }))
}

/// The `Queued` event of `run`, with an identity of its own (no bench run is deduplicated).
pub(crate) fn queued(
    tenant: TenantId,
    run: RunId,
    run_type: &RunType,
    initiator: Initiator,
) -> anyhow::Result<NewEvent> {
    let identity = RunIdentity::new(json!({ "run": run.to_string() }))?;
    Ok(bench_event(RunEvent::Queued(RunQueued {
        run_id: run,
        tenant_id: tenant,
        run_type: run_type.clone(),
        run_identity_hash: identity.hash(tenant, run_type),
        identity: identity.value().clone(),
        initiator,
        context: json!({ "source": "bench" }),
        queued_at: Utc::now(),
        limits: runledger_core::RunLimits::default(),
    })))
}

/// A new run of `run_type` for `tenant`, queued by the system: its id and its `Queued` event.
pub(crate) fn system_run(tenant: TenantId, run_type: &str) -> anyhow::Result<(RunId, NewEvent)> {
    let run = RunId::from_uuid(Uuid::now_v7());
    let queued = queued(tenant, run, &RunType::parse(run_type)?, Initiator::system())?;
    Ok((run, queued))
}

/// A `Started` event.
pub(crate) fn started() -> NewEvent {
    bench_event(RunEvent::Started(RunStarted {
        started_at: Utc::now(),
        worker: None,
    }))
}

/// Appends `runs` whole runs of `per_run` events each (`Queued`, `Started`, `Progressed`…,
/// `Completed`; half of them by a user, over 50 tenants) with `writers` concurrent tasks sharing
/// `writer`, one append per run.
pub(crate) async fn generate_log(
    writer: &EventWriter,
    writers: u64,
    runs: u64,
    per_run: u64,
) -> anyhow::Result<()> {
    try_join_all((0..writers).map(|generator| {
        let writer = writer.clone();
        let share = runs / writers + u64::from(generator < runs % writers);
        tokio::spawn(async move { generate(&writer, generator, share, per_run).await })
    }))
    .await?
    .into_iter()
    .collect()
}

/// Generator `generator`'s share of [`generate_log`]: `runs` whole runs, one after the other.
async fn generate(
    writer: &EventWriter,
    generator: u64,
    runs: u64,
    per_run: u64,
) -> anyhow::Result<()> {
    let run_type = RunType::parse("inventory.sync")?;
    for i in 0..runs {
        let tenant = TenantId::new(1 + ((generator * runs + i) % 50) as i64)?;
        let run = RunId::from_uuid(Uuid::now_v7());
        let initiator = if i % 2 == 0 {
            Initiator::user(UserId::new(1 + (i % 100) as i64)?, "Bench User")?
        } else {
            Initiator::system()
        };
        let mut events = vec![queued(tenant, run, &run_type, initiator)?, started()];
        events.extend((0..per_run - 3).map(|_| progressed()));
        events.push(bench_event(RunEvent::Completed(RunCompleted {
            outcome: Outcome::Succeeded,
            reason: CompletionReason::Finished,
            failures: Vec::new(),
            final_counts: None,
            completed_at: Utc::now(),
        })));
        writer.append(tenant, run, 0, &events).await?;
    }
    Ok(())
}
