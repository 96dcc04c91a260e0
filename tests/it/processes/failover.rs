//! Two `serve`s on different ports with different `--public-url`, and a `runledger project`, on
//! one database: they apply one set of versions (the public URL shapes nothing stored, each
//! `serve` links notices under its own), and while the leading one is down (killed with -9 and
//! kept down, or stopped) a run's notices still reach the feed within 10 s; every run ends with
//! exactly its two notices, each event applied once.

use std::time::{Duration, Instant};

use runledger_api::auth::Role;
use runledger_api::tokens::{NewToken, create_token};
use runledger_core::{TenantId, UserId};
use runledger_projections::{NOTIFICATIONS, OPERATION_RUNS};
use runledger_wire::NoticeQuery;

use super::support::{
    Node, TENANT, USER, database_url, finished_runs, leader_pids, notices_per_run,
    wait_for_notices, wait_until_caught_up,
};
use crate::helpers::{LOG_WAIT, TestStore};

/// The bound the issue sets on notices while one process is down.
const NOTICES_WITHIN: Duration = Duration::from_secs(10);

/// How each phase takes the leading process down.
#[derive(Debug, Clone, Copy)]
enum Down {
    Killed,
    Stopped,
}

#[tokio::test]
async fn with_any_one_process_down_notices_reach_the_feed_within_ten_seconds() {
    let store = TestStore::new().await;
    let url = database_url(&store.pool.connect_options());
    let lease = ["--lease-seconds", "3"];
    let mut nodes = [
        Node::serve("serve-a", &url, "http://a.example", &lease),
        Node::serve("serve-b", &url, "http://b.example", &lease),
        Node::project("project", &url, &lease),
    ];
    for node in nodes.iter_mut().take(2) {
        node.wait_until_serving().await;
    }
    let mut all_runs = finished_runs(&store, 5).await;
    wait_for_notices(&store.pool, &all_runs, LOG_WAIT).await;

    for down in [Down::Killed, Down::Stopped, Down::Killed] {
        let leaders = leader_pids(&store.pool, NOTIFICATIONS).await;
        let leader = nodes
            .iter()
            .position(|node| node.pid().is_some_and(|pid| leaders.contains(&pid)))
            .expect("one of the processes leads the feed");
        match down {
            Down::Killed => nodes[leader].kill(),
            Down::Stopped => nodes[leader].stop(),
        }
        let runs = finished_runs(&store, 10).await;
        let sent = Instant::now();
        wait_for_notices(&store.pool, &runs, NOTICES_WITHIN).await;
        assert!(sent.elapsed() < NOTICES_WITHIN);
        all_runs.extend(runs);
        // Back up, it stands by (or leads again: either way, one set of versions).
        nodes[leader].up();
        if nodes[leader].address.is_some() {
            nodes[leader].wait_until_serving().await;
        }
    }

    wait_until_caught_up(&store.pool, LOG_WAIT).await;
    let counts = notices_per_run(&store.pool, &all_runs).await;
    assert!(
        all_runs.iter().all(|run| counts.get(run) == Some(&2)),
        "every run has exactly its two notices"
    );
    for projection in [OPERATION_RUNS, NOTIFICATIONS] {
        let versions: i64 =
            sqlx::query_scalar("SELECT count(*) FROM projection_versions WHERE projection = $1")
                .bind(projection)
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert_eq!(
            versions, 1,
            "{projection}: every process applies one version"
        );
    }

    // Each serve links the same stored notices under its own public URL, and can lead.
    let token = create_token(
        &store.pool,
        &NewToken {
            tenant_id: TenantId::new(TENANT).unwrap(),
            role: Role::Reader,
            user_id: Some(UserId::new(USER).unwrap()),
            name: "feed reader".to_owned(),
        },
    )
    .await
    .unwrap();
    for (node, public) in nodes
        .iter()
        .take(2)
        .zip(["http://a.example", "http://b.example"])
    {
        let address = node.address.as_deref().unwrap();
        let client = runledger_client::Client::new(address, &token.secret).unwrap();
        let page = client
            .notifications(&NoticeQuery {
                unread_only: false,
                page_size: Some(5),
                page_token: None,
            })
            .await
            .unwrap();
        assert_eq!(page.notifications.len(), 5);
        for notice in &page.notifications {
            assert_eq!(
                notice.view_url,
                format!("{public}/ui/tenants/{TENANT}/runs/{}", notice.run_id)
            );
        }
        let projections = client.projections().await.unwrap();
        for projection in projections["projections"].as_array().unwrap() {
            assert_eq!(
                projection["this_code"]["standing"], "active",
                "{projection}"
            );
            assert_eq!(projection["this_code"]["error"], serde_json::Value::Null);
        }
        let metrics = client.metrics().await.unwrap();
        assert!(
            metrics.contains(
                "runledger_projection_this_code_can_lead{projection=\"notifications\"} 1"
            ),
            "{metrics}"
        );
    }
    for node in &mut nodes {
        node.stop();
    }
}
