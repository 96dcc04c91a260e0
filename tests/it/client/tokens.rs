//! The token API over HTTP: create (the secret shown once), list (never a secret), revoke;
//! service tokens that act for several tenants and answer another tenant's runs exactly like
//! missing ones; a revoked token refused within the staleness (docs/adr/0010).

use std::time::{Duration, Instant};

use runledger_client::wire::{NewTokenBody, QueueRunBody};
use runledger_client::{Client, RetryPolicy};

use super::support::{ServedApp, client, serve};
use crate::api::TestApi;
use crate::helpers::verbs::tenant;

fn token_body(name: &str, role: &str, tenants: &[i64]) -> NewTokenBody {
    NewTokenBody {
        name: name.to_owned(),
        role: role.to_owned(),
        tenant_ids: tenants.to_vec(),
        ..NewTokenBody::default()
    }
}

fn queue() -> QueueRunBody {
    QueueRunBody {
        run_type: "inventory.sync".to_owned(),
        ..QueueRunBody::default()
    }
}

#[tokio::test]
async fn tokens_are_created_listed_and_revoked_over_http_by_admins_only() {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    let served = serve(&api).await;
    let admin = client(&served, &tokens.admin);

    let created = admin
        .create_token(&token_body("worker", "writer", &[1]))
        .await
        .expect("create");
    assert!(created.secret.starts_with("rl_"));
    assert_eq!(created.token.tenant_ids, vec![1]);
    assert!(!created.token.all_tenants);
    let worker = client(&served, &created.secret);
    worker
        .queue_run(1, &queue())
        .await
        .expect("the new token works at once");

    let listed = admin.list_tokens().await.expect("list");
    let entry = listed
        .tokens
        .iter()
        .find(|t| t.id == created.token.id)
        .expect("the new token is listed");
    assert_eq!(entry.name, "worker");
    assert!(entry.last_used_at.is_some(), "its use is recorded");
    let listing = serde_json::to_string(&listed).expect("JSON");
    assert!(
        !listing.contains(&created.secret),
        "a list never shows a secret"
    );

    let revoked = admin.revoke_token(created.token.id).await.expect("revoke");
    assert!(revoked.revoked_at.is_some());
    let again = admin
        .revoke_token(created.token.id)
        .await
        .expect("revoke again");
    assert_eq!(
        again.revoked_at, revoked.revoked_at,
        "revoking twice changes nothing"
    );
    let unknown = admin
        .revoke_token(uuid::Uuid::now_v7())
        .await
        .expect_err("no such token");
    assert!(unknown.is_not_found());

    let writer = client(&served, &tokens.writer);
    let refused = writer
        .list_tokens()
        .await
        .expect_err("a writer is no admin");
    assert_eq!(refused.status(), Some(403));
    let bad = admin
        .create_token(&token_body("user", "reader", &[1, 2]).with_user(7))
        .await
        .expect_err("a user's token of two tenants");
    assert_eq!(
        bad.problem().and_then(|p| p.field.clone()).as_deref(),
        Some("user_id")
    );
    let none = admin
        .create_token(&token_body("nobody", "reader", &[]))
        .await
        .expect_err("a token of no tenant");
    assert_eq!(
        none.problem().and_then(|p| p.field.clone()).as_deref(),
        Some("tenant_ids")
    );
}

trait WithUser {
    fn with_user(self, user: i64) -> Self;
}

impl WithUser for NewTokenBody {
    fn with_user(mut self, user: i64) -> Self {
        self.user_id = Some(user);
        self
    }
}

#[tokio::test]
async fn a_service_token_for_tenants_1_and_2_works_on_both_and_answers_404_on_3() {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(3)).await;
    let served = serve(&api).await;
    let admin = client(&served, &tokens.admin);
    let service = admin
        .create_token(&token_body("product", "writer", &[1, 2]))
        .await
        .expect("a service token");
    let service = client(&served, &service.secret);
    for t in [1, 2] {
        let run = service.queue_run(t, &queue()).await.expect("queue").run;
        assert_eq!(run.tenant_id, t);
        service.start_run(t, run.id).await.expect("start");
    }
    let outsider = client(&served, &tokens.writer);
    let theirs = outsider
        .queue_run(3, &queue())
        .await
        .expect("tenant 3's run")
        .run
        .id;
    let queued_there = service
        .queue_run(3, &queue())
        .await
        .expect_err("not its tenant");
    let started_there = service
        .start_run(3, theirs)
        .await
        .expect_err("not its tenant's run");
    let missing = service
        .start_run(3, uuid::Uuid::now_v7())
        .await
        .expect_err("no such run");
    for error in [&queued_there, &started_there] {
        assert!(error.is_not_found(), "{error:?}");
    }
    let strip = |e: &runledger_client::ClientError| {
        let mut problem = e.problem().expect("a problem").clone();
        problem.instance = None;
        problem.request_id = None;
        problem
    };
    assert_eq!(
        strip(&started_there),
        strip(&missing),
        "exactly like a missing run"
    );

    let everywhere = admin
        .create_token(&NewTokenBody {
            all_tenants: true,
            ..token_body("platform", "auditor", &[])
        })
        .await
        .expect("a token of every tenant");
    assert!(everywhere.token.all_tenants);
    let everywhere = client(&served, &everywhere.secret);
    let events = everywhere
        .run_events(3, theirs)
        .await
        .expect("an auditor of every tenant reads tenant 3's log");
    assert_eq!(events.events.len(), 1);
    let write = everywhere
        .queue_run(3, &queue())
        .await
        .expect_err("an auditor");
    assert_eq!(write.status(), Some(403));
}

/// The token staleness of the revocation test's servers.
const STALENESS: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_revoked_token_is_refused_within_the_staleness() {
    let mut api = TestApi::new().await;
    api.reconfigure(|config| config.token_staleness = STALENESS);
    let tokens = api.tokens(tenant(1)).await;
    let served: ServedApp = serve(&api).await;
    // Another server process on the same ledger: it remembers the token's lookup.
    let other: ServedApp = serve(&api).await;
    let admin = client(&served, &tokens.admin);
    let created = admin
        .create_token(&token_body("soon revoked", "writer", &[1]))
        .await
        .expect("create");
    let worker = Client::new(&other.url, &created.secret)
        .expect("a client")
        .with_retry(RetryPolicy::never());
    worker
        .queue_run(1, &queue())
        .await
        .expect("it works (and is remembered)");
    admin.revoke_token(created.token.id).await.expect("revoke");
    // After the answer, so after the revocation committed.
    let revoked_at = Instant::now();
    let on_the_revoking_server = client(&served, &created.secret)
        .queue_run(1, &queue())
        .await
        .expect_err("the server that revoked it forgets it at once");
    assert_eq!(on_the_revoking_server.status(), Some(401));
    // The bound (docs/adr/0010): every request that starts more than the staleness after the
    // revocation committed is refused; one that started earlier may still be served.
    loop {
        let sent = Instant::now();
        match worker.queue_run(1, &queue()).await {
            Err(error) if error.status() == Some(401) => break,
            Ok(_) if sent.duration_since(revoked_at) > STALENESS => panic!(
                "a request sent {:?} after the revocation was served",
                sent.duration_since(revoked_at)
            ),
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => panic!("neither served nor refused: {error}"),
        }
    }
}
