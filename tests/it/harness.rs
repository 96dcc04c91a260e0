//! The test harness itself: a fresh database is migrated, empty and isolated.

use crate::helpers::{TestStore, fresh_pool};

#[tokio::test]
async fn a_fresh_database_is_migrated_and_empty() {
    let store = TestStore::new().await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(events, 0);
}

#[tokio::test]
async fn test_databases_are_isolated() {
    let first = fresh_pool().await;
    let second = fresh_pool().await;
    let first_name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&first)
        .await
        .unwrap();
    let second_name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&second)
        .await
        .unwrap();
    assert_ne!(first_name, second_name);
}
