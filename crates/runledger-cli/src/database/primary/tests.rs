//! Tests of finding the primary among real servers: a durable primary and its standby.

use runledger_pg::{Durability, EmbeddedConfig, EmbeddedPostgres, StandbyMode};

use super::*;

fn socket_list(servers: &[&EmbeddedPostgres], target: &str) -> ServerList {
    let hosts: Vec<String> = servers
        .iter()
        .map(|s| s.socket_dir().display().to_string())
        .collect();
    let ports: Vec<String> = servers.iter().map(|s| s.port().to_string()).collect();
    ServerList::parse(&format!(
        "postgres://postgres@/postgres?host={}&port={}&target_session_attrs={target}",
        hosts.join(","),
        ports.join(",")
    ))
    .unwrap()
}

/// The pool `list` makes, and whether the server it is on is a standby.
async fn pool_of(list: ServerList) -> (PgPool, bool) {
    let options = list.servers[0].clone();
    let pool = following_pool(list, options, PgPoolOptions::new())
        .await
        .unwrap();
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&pool)
        .await
        .unwrap();
    (pool, in_recovery)
}

/// A standby listed first is passed over for read-write and taken for `any`; a server that is
/// not there is passed over for both.
#[tokio::test]
async fn the_first_server_that_fits_is_the_pools() {
    let primary = EmbeddedPostgres::start(EmbeddedConfig {
        durability: Durability::Durable,
        port: 5442,
        ..EmbeddedConfig::ephemeral()
    })
    .unwrap();
    let standby = primary
        .start_standby(
            "primary_tests",
            StandbyMode::Asynchronous,
            EmbeddedConfig {
                port: 5443,
                ..EmbeddedConfig::ephemeral()
            },
        )
        .unwrap();

    let (pool, in_recovery) = pool_of(socket_list(&[&standby, &primary], "read-write")).await;
    assert!(!in_recovery, "the pool is on the primary");
    assert_eq!(
        address(&pool.connect_options()),
        format!("{}:{}", primary.socket_dir().display(), primary.port())
    );
    pool.close().await;

    let (pool, in_recovery) = pool_of(socket_list(&[&standby, &primary], "any")).await;
    assert!(
        in_recovery,
        "`any` takes the first that answers: the standby"
    );
    pool.close().await;

    let only_standby = socket_list(&[&standby], "read-write");
    let mut list = only_standby.clone();
    // A second entry that nobody listens on: the list is multi-host, and nothing fits.
    let mut absent = list.servers[0].clone();
    absent = absent.port(1);
    list.servers.push(absent);
    let options = list.servers[0].clone();
    let error = following_pool(list, options, PgPoolOptions::new())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("accepts writes"), "{error:#}");
}
