//! Tests of replication between real servers started from the installed binaries.

use sqlx::{Connection, PgConnection};

use super::*;

async fn connect(server: &EmbeddedPostgres) -> PgConnection {
    PgConnection::connect(&server.connection_url())
        .await
        .unwrap()
}

async fn count(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[test]
fn synchronous_standby_names_we_wrote_are_read_back() {
    assert_eq!(listed_standbys(""), Vec::<String>::new());
    assert_eq!(listed_standbys("ANY 1 (a)"), vec!["a"]);
    assert_eq!(listed_standbys("ANY 1 (a, b_2)"), vec!["a", "b_2"]);
}

#[test]
fn a_synchronous_standby_of_an_ephemeral_primary_is_refused() {
    let primary = EmbeddedPostgres::start(EmbeddedConfig::ephemeral()).unwrap();
    let error = primary
        .start_standby("s", StandbyMode::Synchronous, EmbeddedConfig::ephemeral())
        .unwrap_err();
    assert!(error.to_string().contains("synchronous_commit"), "{error}");
}

/// A synchronous standby has every commit the primary acknowledged when the primary is killed,
/// and accepts writes once promoted; an asynchronous one streams beside it, and pausing its
/// replay holds its copy back until it resumes.
#[tokio::test]
async fn standbys_stream_and_a_synchronous_one_survives_the_primary_and_is_promoted() {
    let primary = EmbeddedPostgres::start(EmbeddedConfig {
        durability: Durability::Durable,
        ..EmbeddedConfig::ephemeral()
    })
    .unwrap();
    let mut on_primary = connect(&primary).await;
    sqlx::query("CREATE TABLE t (n int)")
        .execute(&mut on_primary)
        .await
        .unwrap();

    let synchronous = primary
        .start_standby(
            "sync_1",
            StandbyMode::Synchronous,
            EmbeddedConfig {
                port: 5433,
                ..EmbeddedConfig::ephemeral()
            },
        )
        .unwrap();
    let asynchronous = primary
        .start_standby(
            "async_1",
            StandbyMode::Asynchronous,
            EmbeddedConfig {
                port: 5434,
                ..EmbeddedConfig::ephemeral()
            },
        )
        .unwrap();
    let mut on_async = connect(&asynchronous).await;
    asynchronous.pause_replay().unwrap();

    for n in 0..100 {
        sqlx::query("INSERT INTO t VALUES ($1)")
            .bind(n)
            .execute(&mut on_primary)
            .await
            .unwrap();
    }
    assert_eq!(count(&mut on_async).await, 0, "replay is paused");
    asynchronous.resume_replay().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&mut on_async).await < 100 {
        assert!(
            Instant::now() < deadline,
            "the resumed standby never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    primary.kill().unwrap();
    assert!(
        on_primary.ping().await.is_err(),
        "the killed primary still answers"
    );
    synchronous.promote().unwrap();
    let mut on_promoted = connect(&synchronous).await;
    assert_eq!(
        count(&mut on_promoted).await,
        100,
        "every acknowledged commit"
    );
    sqlx::query("INSERT INTO t VALUES (100)")
        .execute(&mut on_promoted)
        .await
        .unwrap();
    assert_eq!(count(&mut on_promoted).await, 101);
}
