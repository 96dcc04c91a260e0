//! Roles: a reader reads, a writer also records commands, an auditor also reads history, an
//! admin does everything (and manages projections); no, bad or revoked tokens are 401, and a
//! role that may not do something is 403 before anything is looked up or written. A token in
//! use is remembered for a bounded time, so its revocation takes effect within that bound.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use runledger_api::auth::Role;
use runledger_api::tokens::{NewToken, create_token, revoke_token};
use serde_json::json;

use super::TestApi;
use super::support::{Call, run_routes, runs_path};
use crate::helpers::verbs::{new_run_id, tenant};

/// Whether `holder` may use a route that needs `needed` (the contract, stated independently
/// of `Role::allows`).
fn may(holder: Role, needed: Role) -> bool {
    match holder {
        Role::Admin => true,
        Role::Reader => needed == Role::Reader,
        Role::Writer => matches!(needed, Role::Reader | Role::Writer),
        Role::Auditor => matches!(needed, Role::Reader | Role::Auditor),
    }
}

#[tokio::test]
async fn each_role_may_do_exactly_what_it_allows_on_every_run_route() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;

    for holder in [Role::Reader, Role::Writer, Role::Auditor, Role::Admin] {
        let run = api
            .queue(
                t,
                &tokens.writer,
                "inventory.sync",
                json!({ "holder": holder.as_str() }),
            )
            .await;
        api.project().await;
        for route in run_routes() {
            let before = api.event_count().await;
            let answer = api.send(route.call(t, &run, tokens.of(holder))).await;
            let label = format!(
                "{} as {} on {} {}",
                holder.as_str(),
                route.role.as_str(),
                route.method,
                route.rest
            );
            if may(holder, route.role) {
                assert!(
                    answer.status != StatusCode::FORBIDDEN
                        && answer.status != StatusCode::UNAUTHORIZED,
                    "{label}: {:#}",
                    answer.body
                );
            } else {
                let problem = answer.assert_problem(StatusCode::FORBIDDEN, None);
                assert_eq!(
                    problem["type"], "urn:runledger:problem:forbidden",
                    "{label}"
                );
                assert_eq!(api.event_count().await, before, "{label} wrote nothing");
            }
        }
    }
    // Queueing too; and a role is checked before the run is looked up.
    let missing = new_run_id().to_string();
    for holder in [Role::Reader, Role::Auditor] {
        api.post(
            &runs_path(t),
            tokens.of(holder),
            &json!({"type": "inventory.sync"}),
        )
        .await
        .assert_problem(StatusCode::FORBIDDEN, None);
        api.post(
            &format!("{}/{missing}/start", runs_path(t)),
            tokens.of(holder),
            &json!({}),
        )
        .await
        .assert_problem(StatusCode::FORBIDDEN, None);
    }
}

#[tokio::test]
async fn only_an_admin_may_rebuild_a_projection() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    api.project().await;
    let rebuild = "/v1/projections/operation_runs/rebuild";

    for holder in [Role::Reader, Role::Writer, Role::Auditor] {
        api.post(rebuild, tokens.of(holder), &json!({}))
            .await
            .assert_problem(StatusCode::FORBIDDEN, None);
        // Any token may look at the projections' status.
        let status = api.get("/v1/projections", tokens.of(holder)).await;
        assert_eq!(status.status, StatusCode::OK);
    }
    let started = api.post(rebuild, &tokens.admin, &json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{:#}", started.body);
}

#[tokio::test]
async fn no_token_a_wrong_one_or_a_revoked_one_is_401() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let created = create_token(
        &api.store.pool,
        &NewToken {
            tenant_id: t,
            role: Role::Admin,
            user_id: None,
            name: "soon revoked".to_owned(),
        },
    )
    .await
    .unwrap();
    assert!(revoke_token(&api.store.pool, created.id).await.unwrap());
    let live = api.tokens(t).await.admin;

    for authorization in [
        None,
        Some("Bearer rl_not_a_token".to_owned()),
        Some(format!("Bearer {}", created.secret)),
        Some(format!("Basic {live}")),
        Some(live.clone()),
        Some("Bearer ".to_owned()),
    ] {
        for (method, path) in [
            (Method::GET, runs_path(t)),
            (Method::POST, runs_path(t)),
            (Method::GET, "/v1/notifications".to_owned()),
            (Method::GET, "/v1/projections".to_owned()),
            (Method::GET, format!("/v1/tenants/{t}/events")),
        ] {
            let mut call = Call::new(method.clone(), &path, None);
            if let Some(value) = &authorization {
                call = call.header("authorization", value);
            }
            let answer = api
                .send(call.json(&json!({"type": "inventory.sync"})).build())
                .await;
            let problem = answer.assert_problem(StatusCode::UNAUTHORIZED, None);
            assert_eq!(
                problem["type"], "urn:runledger:problem:unauthorized",
                "{method} {path}"
            );
        }
    }
    assert_eq!(api.event_count().await, 0);
}

/// A writer token of `t` that the test revokes: its secret and id.
async fn token_to_revoke(api: &TestApi, t: runledger_core::TenantId) -> (String, uuid::Uuid) {
    let created = create_token(
        &api.store.pool,
        &NewToken {
            tenant_id: t,
            role: Role::Writer,
            user_id: None,
            name: "to be revoked".to_owned(),
        },
    )
    .await
    .unwrap();
    (created.secret, created.id)
}

#[tokio::test]
async fn a_revoked_token_is_refused_once_the_staleness_bound_has_passed() {
    let mut api = TestApi::new().await;
    let staleness = Duration::from_millis(300);
    api.reconfigure(|config| config.token_staleness = staleness);
    let t = tenant(1);
    let (secret, id) = token_to_revoke(&api, t).await;
    // Used, so its lookup is remembered.
    let queue = json!({"type": "inventory.sync"});
    let queued = api.post(&runs_path(t), &secret, &queue).await;
    assert_eq!(queued.status, StatusCode::CREATED, "{:#}", queued.body);

    assert!(revoke_token(&api.store.pool, id).await.unwrap());
    // The revocation committed before this instant: every request that starts a staleness
    // later is refused.
    tokio::time::sleep(staleness).await;
    let events = api.event_count().await;
    for answer in [
        api.get(&runs_path(t), &secret).await,
        api.post(&runs_path(t), &secret, &json!({"type": "inventory.scan"}))
            .await,
    ] {
        let problem = answer.assert_problem(StatusCode::UNAUTHORIZED, None);
        assert_eq!(problem["type"], "urn:runledger:problem:unauthorized");
    }
    assert_eq!(
        api.event_count().await,
        events,
        "the refused command wrote nothing"
    );
}

#[tokio::test]
async fn within_the_staleness_bound_a_used_token_still_works_and_zero_disables_the_memory() {
    let mut api = TestApi::new().await;
    let t = tenant(1);
    // The bound is the documented trade-off (docs/adr/0010): a revocation takes effect up to
    // that much later for a token in use, so the lookup round trip is saved.
    api.reconfigure(|config| config.token_staleness = Duration::from_secs(60));
    api.project().await;
    let (secret, id) = token_to_revoke(&api, t).await;
    assert_eq!(api.get(&runs_path(t), &secret).await.status, StatusCode::OK);
    assert!(revoke_token(&api.store.pool, id).await.unwrap());
    assert_eq!(
        api.get(&runs_path(t), &secret).await.status,
        StatusCode::OK,
        "remembered for up to 60 s"
    );

    // Without the memory, a revocation takes effect at once.
    api.reconfigure(|config| config.token_staleness = Duration::ZERO);
    let (secret, id) = token_to_revoke(&api, t).await;
    assert_eq!(api.get(&runs_path(t), &secret).await.status, StatusCode::OK);
    assert!(revoke_token(&api.store.pool, id).await.unwrap());
    api.get(&runs_path(t), &secret)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, None);
}
