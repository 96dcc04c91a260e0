//! Read-your-writes without polling: with every poll interval a minute long (the API's hub,
//! the projectors'), a query with `min_position` still answers within moments of the command,
//! because the projector wakes on the append's notification and the wait wakes on the
//! projector's published position (here from a projector with a hub of its own, as another
//! process would run it: through its `NOTIFY`).

use std::time::Duration;

use axum::http::StatusCode;
use runledger_api::auth::Role;
use runledger_projections::{ProjectionsConfig, ProjectorOptions, run_projectors};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api::TestApi;
use crate::api::support::{run_path, runs_path};
use crate::helpers::verbs::tenant;

/// Far longer than any wait below: a wait that returns in time did not poll.
const LONG_POLL: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_read_your_writes_wait_wakes_on_the_projectors_commit_not_on_a_poll() {
    let mut api = TestApi::new().await;
    api.reconfigure(|config| {
        config.live_poll = LONG_POLL;
        config.max_read_wait = LONG_POLL;
    });
    let t = tenant(1);
    let writer = api.token(t, Role::Writer).await;
    let reader = api.token(t, Role::Reader).await;
    let projections = ProjectionsConfig {
        options: ProjectorOptions {
            poll: LONG_POLL,
            ..ProjectorOptions::default()
        },
        ..ProjectionsConfig::default()
    };
    let (stop, mut stopped) = watch::channel(false);
    let pool = api.store.app_pool.clone();
    let projectors = tokio::spawn(async move {
        run_projectors(pool, projections, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await
        .expect("the projectors run");
    });

    for n in 0..3 {
        let queued = api
            .post(
                &runs_path(t),
                &writer,
                &json!({"type": "inventory.sync", "identity": {"n": n}}),
            )
            .await;
        assert_eq!(queued.status, StatusCode::CREATED, "{:#}", queued.body);
        let id = queued.body["run"]["id"].as_str().unwrap().to_owned();
        let position = queued.body["position"]
            .as_i64()
            .expect("a command's position");
        let asked = Instant::now();
        let read = api
            .get(
                &format!("{}?min_position={position}", run_path(t, &id, "")),
                &reader,
            )
            .await;
        let waited = asked.elapsed();
        assert_eq!(read.status, StatusCode::OK, "{:#}", read.body);
        assert_eq!(read.body["status"], "queued");
        assert!(
            waited < LONG_POLL / 4,
            "the wait woke on the projector's commit, not a poll ({waited:?})"
        );
    }
    let _ = stop.send(true);
    projectors.await.unwrap();
}
