//! The notification feed: the initiating user gets a notice when a run is queued and when it
//! completes, with readable texts (and no stored link: readers build it); system runs notify no one; ids are deterministic,
//! and read state survives a rebuild, which notifies no one again.

use runledger_core::{Initiator, QueueRun, RunCommand, RunIdentity, RunType, UserId};
use runledger_projections::{
    NoticeKind, Notifications, Projection, Projector, StepOutcome, notice_id, rebuild,
};
use serde_json::json;

use super::support::{drain, options, view_rows};
use crate::helpers::TestStore;
use crate::helpers::verbs::{
    at, complete, dispatch_failed, new_run_id, progress, request, start, tenant,
};

/// id, run, user, kind, title, body, outcome.
type NoticeRow = (uuid::Uuid, uuid::Uuid, i64, String, String, String, String);

fn queue_by_user(run: runledger_core::RunId, user: i64) -> RunCommand {
    RunCommand::Queue(QueueRun {
        run_id: run,
        tenant_id: tenant(7),
        run_type: RunType::parse("inventory.sync").unwrap(),
        identity: RunIdentity::new(json!({"run": run.to_string()})).unwrap(),
        initiator: Initiator::user(UserId::new(user).unwrap(), "Ada Lovelace").unwrap(),
        context: json!({}),
        limits: runledger_core::RunLimits::default(),
        at: at(0),
    })
}

#[tokio::test]
async fn initiators_are_notified_once_per_kind_and_read_state_survives_a_rebuild() {
    let store = TestStore::new().await;
    let (mine, failed, system) = (new_run_id(), new_run_id(), new_run_id());
    let t = tenant(7);
    store
        .commands
        .execute(&request(t, mine, queue_by_user(mine, 42)))
        .await
        .unwrap();
    for command in [start(), progress(8, 2), complete()] {
        store
            .commands
            .execute(&request(t, mine, command))
            .await
            .unwrap();
    }
    store
        .commands
        .execute(&request(t, failed, queue_by_user(failed, 42)))
        .await
        .unwrap();
    store
        .commands
        .execute(&request(t, failed, dispatch_failed()))
        .await
        .unwrap();
    store.queue_run(t, system, json!({"system": true})).await;

    let feed = Notifications::new(store.pool.clone());
    let mut projector = Projector::new(store.pool.clone(), feed.clone(), options());
    assert_eq!(drain(&mut projector).await, StepOutcome::CaughtUp);

    let notices: Vec<NoticeRow> = sqlx::query_as(
        "SELECT id, run_id, user_id, kind, title, body, outcome \
             FROM public.notifications ORDER BY position",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    let expected = vec![
        (
            notice_id(mine.as_uuid(), NoticeKind::Queued),
            mine.as_uuid(),
            42,
            "queued".to_owned(),
            "Inventory sync queued".to_owned(),
            "Inventory sync was queued and will start shortly".to_owned(),
            "pending".to_owned(),
        ),
        (
            notice_id(mine.as_uuid(), NoticeKind::Completed),
            mine.as_uuid(),
            42,
            "completed".to_owned(),
            "Inventory sync partially succeeded".to_owned(),
            "Inventory sync completed: 8 succeeded, 2 failed".to_owned(),
            "partially_succeeded".to_owned(),
        ),
        (
            notice_id(failed.as_uuid(), NoticeKind::Queued),
            failed.as_uuid(),
            42,
            "queued".to_owned(),
            "Inventory sync queued".to_owned(),
            "Inventory sync was queued and will start shortly".to_owned(),
            "pending".to_owned(),
        ),
        (
            notice_id(failed.as_uuid(), NoticeKind::Completed),
            failed.as_uuid(),
            42,
            "completed".to_owned(),
            "Inventory sync failed".to_owned(),
            "Inventory sync failed: no worker accepted the run".to_owned(),
            "failed".to_owned(),
        ),
    ];
    assert_eq!(notices, expected, "the system run notified no one");
    let created: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT created_at FROM public.notifications WHERE id = $1")
            .bind(notice_id(mine.as_uuid(), NoticeKind::Completed))
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!(created, at(3), "a notice is dated by its event");

    // The user reads one notice; the feed is rebuilt; the same notices come back, still read.
    let read = notice_id(mine.as_uuid(), NoticeKind::Completed);
    sqlx::query(
        "INSERT INTO notification_reads (notification_id, user_id, tenant_id) VALUES ($1, 42, 7)",
    )
    .bind(read)
    .execute(&store.pool)
    .await
    .unwrap();
    let before = view_rows(&store.pool, "notifications").await;
    assert!(
        before
            .iter()
            .any(|n| n["id"] == json!(read) && !n["read_at"].is_null())
    );
    rebuild(&store.pool, &feed.definition()).await.unwrap();
    drain(&mut projector).await;
    let after = view_rows(&store.pool, "notifications").await;
    assert_eq!(
        after, before,
        "the rebuilt feed has the same notices and read state"
    );
    let schemas: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM projection_versions WHERE projection = 'notifications'",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert_eq!(schemas, 2, "it was a real rebuild");
}

#[test]
fn notice_ids_are_deterministic_per_run_and_kind() {
    let run = uuid::Uuid::from_u128(7);
    assert_eq!(
        notice_id(run, NoticeKind::Queued),
        notice_id(run, NoticeKind::Queued)
    );
    assert_ne!(
        notice_id(run, NoticeKind::Queued),
        notice_id(run, NoticeKind::Completed)
    );
    assert_ne!(
        notice_id(run, NoticeKind::Queued),
        notice_id(uuid::Uuid::from_u128(8), NoticeKind::Queued)
    );
}
