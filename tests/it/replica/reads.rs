//! Which server a query reads: the replica (shown by pausing its replay: it keeps answering
//! what it had), the primary when `min_position` is past what the replica replayed within the
//! bound, and the primary again when the replica lags past its limit or is stopped.

use std::time::Duration;

use axum::http::StatusCode;
use runledger_api::replicas::ReplicaConfig;

use super::support::{Replicated, ids};

/// Replicas as a test sets them: probes often, and a short read-your-writes bound.
fn config(max_lag: Duration) -> ReplicaConfig {
    ReplicaConfig {
        max_lag,
        wait: Duration::from_millis(500),
        probe_every: Duration::from_millis(100),
        ..ReplicaConfig::default()
    }
}

#[tokio::test]
async fn queries_read_the_replica_and_min_position_past_its_replay_reads_the_primary() {
    let replicated = Replicated::start(config(Duration::from_secs(600))).await;

    // Caught up, the replica answers what the primary answers.
    let (first, position) = replicated.queue().await;
    let shown = replicated
        .get(&format!(
            "/v1/tenants/1/runs/{first}?min_position={position}"
        ))
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{:#}", shown.body);
    replicated.wait_until_listed(&first).await;
    let through_replica = replicated.get("/v1/tenants/1/runs").await;
    let on_primary = replicated.get_from_primary("/v1/tenants/1/runs").await;
    assert_eq!(through_replica.body, on_primary.body);

    // Replay paused: the replica keeps its copy, and reads without min_position show it.
    replicated.standby().pause_replay().expect("pause replay");
    let (second, position) = replicated.queue().await;
    let with_position = replicated
        .listed(&format!("?min_position={position}"))
        .await;
    assert_eq!(with_position, [second.clone(), first.clone()]);
    let read = replicated
        .get(&format!(
            "/v1/tenants/1/runs/{second}?min_position={position}"
        ))
        .await;
    assert_eq!(read.status, StatusCode::OK, "{:#}", read.body);
    // The primary has it (the answers above came from it, past the replica's bound)…
    let on_primary = replicated.get_from_primary("/v1/tenants/1/runs").await;
    assert_eq!(ids(&on_primary.body), [second.clone(), first.clone()]);
    // …the replica, still in use, does not.
    assert!(replicated.replica_state().in_use);
    assert_eq!(replicated.listed("").await, std::slice::from_ref(&first));
    let missing = replicated
        .get(&format!("/v1/tenants/1/runs/{second}"))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{:#}", missing.body);
    let counted = replicated.get("/v1/tenants/1/runs:count").await;
    assert_eq!(counted.body["total"], 1, "{:#}", counted.body);

    // Resumed, the replica replays the run and shows it.
    replicated.standby().resume_replay().expect("resume replay");
    replicated.wait_until_listed(&second).await;
    let counted = replicated.get("/v1/tenants/1/runs:count").await;
    assert_eq!(counted.body["total"], 2, "{:#}", counted.body);

    let metrics = replicated.metrics().await;
    let series = |metric: &str| {
        metrics
            .lines()
            .find(|line| {
                line.starts_with(&format!(
                    "{metric}{{replica=\"{}\"}} ",
                    replicated.replica_name
                ))
            })
            .map(str::to_owned)
    };
    let lag = series("runledger_replica_replay_lag_seconds")
        .unwrap_or_else(|| panic!("no lag of the replica in {metrics}"));
    let lag: f64 = lag.rsplit(' ').next().unwrap().parse().expect("a number");
    assert!((0.0..600.0).contains(&lag), "{lag}");
    assert_eq!(
        series("runledger_replica_in_use").as_deref(),
        Some(
            format!(
                "runledger_replica_in_use{{replica=\"{}\"}} 1",
                replicated.replica_name
            )
            .as_str()
        )
    );
    // The name holds no secret: the host (a socket directory), the port and the database.
    assert!(
        replicated.replica_name.ends_with(":5433/runledger"),
        "{}",
        replicated.replica_name
    );

    replicated.stop().await;
}

#[tokio::test]
async fn a_replica_lagging_past_the_limit_is_skipped_until_it_catches_up() {
    let replicated = Replicated::start(config(Duration::from_secs(1))).await;
    replicated.standby().pause_replay().expect("pause replay");
    let (run, _) = replicated.queue().await;
    // Its lag grows past a second: the probes stop using it…
    replicated.wait_until_in_use(false).await;
    let state = replicated.replica_state();
    assert!(
        state.lag.is_some_and(|lag| lag > Duration::from_secs(1)),
        "{state:?}"
    );
    // …and the list reads the primary, which has the run the paused replica has not.
    replicated.wait_until_listed(&run).await;
    let metrics = replicated.metrics().await;
    let skipped = format!(
        "runledger_replica_in_use{{replica=\"{}\"}} 0",
        replicated.replica_name
    );
    assert!(metrics.lines().any(|line| line == skipped), "{metrics}");

    replicated.standby().resume_replay().expect("resume replay");
    replicated.wait_until_in_use(true).await;
    assert!(replicated.listed("").await.contains(&run));
    replicated.stop().await;
}

#[tokio::test]
async fn a_stopped_replica_is_skipped_and_queries_keep_answering() {
    let mut replicated = Replicated::start(config(Duration::from_secs(600))).await;
    let (before, _) = replicated.queue().await;
    replicated.wait_until_listed(&before).await;

    let standby = replicated.standby.take().expect("the standby runs");
    tokio::task::spawn_blocking(move || standby.stop())
        .await
        .expect("the stop task")
        .expect("stop the standby");
    // Every query answers, from the primary, whether or not the probe has seen the stop yet.
    let (after, position) = replicated.queue().await;
    for _ in 0..5 {
        assert!(replicated.listed("").await.contains(&before));
    }
    let with_position = replicated
        .listed(&format!("?min_position={position}"))
        .await;
    assert_eq!(with_position, [after.clone(), before.clone()]);
    replicated.wait_until_in_use(false).await;
    assert_eq!(replicated.listed("").await, [after, before]);
    let metrics = replicated.metrics().await;
    let skipped = format!(
        "runledger_replica_in_use{{replica=\"{}\"}} 0",
        replicated.replica_name
    );
    assert!(metrics.lines().any(|line| line == skipped), "{metrics}");
    replicated.stop().await;
}
