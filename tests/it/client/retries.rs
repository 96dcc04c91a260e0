//! Retries: a command whose answer is lost (the server applied it, a 503 replaced its answer)
//! is sent again with the same `Idempotency-Key`, answered from the first send, and recorded
//! once; a server that stays unavailable is given up on within the policy's bound.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runledger_client::wire::ProgressBody;
use runledger_client::wire::audit::StateParams;
use runledger_client::{Client, RetryPolicy};

use super::support::{Losses, client, serve_losing};
use crate::api::TestApi;
use crate::helpers::verbs::tenant;

#[tokio::test]
async fn a_command_whose_answer_was_lost_is_retried_with_the_same_key_and_counts_once() {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    let losses = Arc::new(Mutex::new(Losses {
        path_suffix: "/progress".to_owned(),
        remaining: 2,
        ..Losses::default()
    }));
    let served = serve_losing(&api, Arc::clone(&losses)).await;
    let writer = client(&served, &tokens.writer);
    let run = writer
        .queue_run(
            1,
            &runledger_client::wire::QueueRunBody {
                run_type: "inventory.sync".to_owned(),
                ..Default::default()
            },
        )
        .await
        .expect("queue")
        .run
        .id;
    writer.start_run(1, run).await.expect("start");

    let answer = writer
        .report_progress(
            1,
            run,
            &ProgressBody {
                success: 5,
                ..ProgressBody::default()
            },
        )
        .await
        .expect("progress, after two lost answers");
    assert_eq!(answer.run.summary_counts.success, 5);

    let seen = losses.lock().expect("the losses").seen.clone();
    let progress: Vec<_> = seen
        .iter()
        .filter(|(path, _, _)| path.ends_with("/progress"))
        .collect();
    assert_eq!(
        progress.len(),
        3,
        "two lost answers, then the answer: {seen:?}"
    );
    assert!(progress[0].2 && progress[1].2 && !progress[2].2);
    let key = progress[0].1.clone().expect("the client sets a key");
    assert!(
        progress
            .iter()
            .all(|(_, k, _)| k.as_deref() == Some(key.as_str())),
        "every attempt carries the first one's key: {progress:?}"
    );
    let keys: Vec<_> = seen.iter().filter_map(|(_, k, _)| k.clone()).collect();
    let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
    assert_eq!(
        distinct.len(),
        3,
        "queue, start and progress each have a key of their own"
    );

    let auditor = client(&served, &tokens.auditor);
    let state = auditor
        .run_state(1, run, &StateParams::default())
        .await
        .expect("the run's state");
    assert_eq!(state.run.summary_counts.success, 5, "counted once");
    assert_eq!(
        state.as_of.version, 3,
        "queued, started, one progress event"
    );
}

#[tokio::test]
async fn a_server_that_stays_unavailable_is_given_up_on_with_its_problem() {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    let losses = Arc::new(Mutex::new(Losses {
        path_suffix: "/runs".to_owned(),
        remaining: usize::MAX,
        ..Losses::default()
    }));
    let served = serve_losing(&api, Arc::clone(&losses)).await;
    let policy = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    };
    let writer = Client::new(&served.url, &tokens.writer)
        .expect("a client")
        .with_retry(policy);
    let started = Instant::now();
    let error = writer
        .queue_run(
            1,
            &runledger_client::wire::QueueRunBody {
                run_type: "inventory.sync".to_owned(),
                ..Default::default()
            },
        )
        .await
        .expect_err("the answers are always lost");
    assert_eq!(error.status(), Some(503));
    assert_eq!(losses.lock().expect("the losses").seen.len(), 4);
    assert!(started.elapsed() < Duration::from_secs(10));
    // The first send was served: the run exists once, whatever the client was told.
    assert_eq!(api.store.count("streams").await, 1);
}

#[tokio::test]
async fn a_connection_refused_is_retried_then_reported_as_transport() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("the address");
    drop(listener);
    let client = Client::new(&format!("http://{address}"), "rl_nothing")
        .expect("a client")
        .with_retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        });
    let error = client.healthz().await.expect_err("nothing listens");
    assert!(
        matches!(error, runledger_client::ClientError::Transport(_)),
        "{error:?}"
    );
}
