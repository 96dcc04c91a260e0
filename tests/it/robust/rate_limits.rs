//! Rate limits through the real router: a token past its limit, a tenant past its limit, and a
//! client address past its sign-in attempts answer 429 with `Retry-After`; others go on.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use runledger_api::auth::Role;
use runledger_api::rate_limit::{Rate, RateLimitConfig};
use runledger_api::tokens::{NewToken, create_token};

use crate::api::support::runs_path;
use crate::api::{Answer, TestApi};
use crate::helpers::verbs::tenant;

fn per_minute(requests: u32) -> Rate {
    Rate::per_minute(NonZeroU32::new(requests).expect("a positive limit"))
}

/// A 429 problem with a `Retry-After` of whole seconds within the limit's period.
#[track_caller]
fn assert_limited(answer: &Answer) {
    let problem = answer.assert_problem(StatusCode::TOO_MANY_REQUESTS, None);
    assert_eq!(problem["type"], "urn:runledger:problem:too-many-requests");
    let seconds: u64 = answer.headers[header::RETRY_AFTER]
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");
}

#[tokio::test]
async fn a_token_past_its_limit_answers_429_with_retry_after_and_other_tokens_go_on() {
    let mut api = TestApi::new().await;
    api.reconfigure(|config| {
        config.rate_limits = RateLimitConfig {
            per_token: per_minute(3),
            ..RateLimitConfig::default()
        };
    });
    let t = tenant(1);
    let flooding = api.token(t, Role::Reader).await;
    let other = api.token(t, Role::Reader).await;
    for _ in 0..3 {
        let answer = api.get(&runs_path(t), &flooding).await;
        assert_ne!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_limited(&api.get(&runs_path(t), &flooding).await);
    let answer = api.get(&runs_path(t), &other).await;
    assert_ne!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:#}",
        answer.body
    );
}

#[tokio::test]
async fn a_tenant_past_its_limit_answers_429_whatever_the_token_and_other_tenants_go_on() {
    let mut api = TestApi::new().await;
    api.reconfigure(|config| {
        config.rate_limits = RateLimitConfig {
            per_tenant: per_minute(4),
            ..RateLimitConfig::default()
        };
    });
    let (one, two) = (tenant(1), tenant(2));
    let tokens = [
        api.token(one, Role::Reader).await,
        api.token(one, Role::Reader).await,
    ];
    for n in 0..4 {
        let answer = api.get(&runs_path(one), &tokens[n % 2]).await;
        assert_ne!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_limited(&api.get(&runs_path(one), &tokens[0]).await);
    assert_limited(&api.get(&runs_path(one), &tokens[1]).await);
    let other_tenant = api.token(two, Role::Reader).await;
    let answer = api.get(&runs_path(two), &other_tenant).await;
    assert_ne!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:#}",
        answer.body
    );
}

/// A sign-in attempt from `address`, with a wrong token and no form cookie: it is counted
/// before either is checked.
fn sign_in_attempt(address: SocketAddr) -> Request<Body> {
    let mut request = Request::post("/ui/sign-in")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("token=guess&csrf=x&next="))
        .expect("a valid request");
    request.extensions_mut().insert(ConnectInfo(address));
    request
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_client_address() {
    let mut api = TestApi::new().await;
    api.reconfigure(|config| {
        config.rate_limits = RateLimitConfig {
            sign_in: per_minute(2),
            ..RateLimitConfig::default()
        };
    });
    let guesser: SocketAddr = "192.0.2.1:40000".parse().expect("an address");
    let neighbour: SocketAddr = "192.0.2.2:40000".parse().expect("an address");
    for _ in 0..2 {
        let (status, _, _) = api.send_raw(sign_in_attempt(guesser)).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "the form is refused, not the address"
        );
    }
    // Another connection from the same address (another port) shares its limit.
    let mut again = guesser;
    again.set_port(40001);
    let (status, headers, _) = api.send_raw(sign_in_attempt(again)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let seconds: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");

    let (status, _, _) = api.send_raw(sign_in_attempt(neighbour)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "another address has attempts left"
    );
}

#[tokio::test]
async fn a_token_with_a_limit_of_its_own_is_held_to_it() {
    let mut api = TestApi::new().await;
    let t = tenant(1);
    let created = create_token(
        &api.store.pool,
        &NewToken {
            tenant_id: t,
            role: Role::Reader,
            user_id: None,
            name: "suspect".to_owned(),
        },
    )
    .await
    .expect("a token");
    let ordinary = api.token(t, Role::Reader).await;
    api.reconfigure(|config| {
        config.rate_limits = RateLimitConfig {
            per_token: per_minute(3),
            token_overrides: [(created.id, per_minute(1))].into_iter().collect(),
            ..RateLimitConfig::default()
        };
    });
    let answer = api.get(&runs_path(t), &created.secret).await;
    assert_ne!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_limited(&api.get(&runs_path(t), &created.secret).await);
    for _ in 0..3 {
        let answer = api.get(&runs_path(t), &ordinary).await;
        assert_ne!(
            answer.status,
            StatusCode::TOO_MANY_REQUESTS,
            "the default limit"
        );
    }
    assert_limited(&api.get(&runs_path(t), &ordinary).await);
}
