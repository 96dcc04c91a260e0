//! The HTTP API through the real router (`runledger_api::app`, as the binary builds it), and over
//! real HTTP on a random port where a test needs a live connection. One file per route family;
//! shared set-up ([`TestApi`]) lives here.

// Audit routes: a run's events and its state as of a version or time; the tenant's log, paged
// and live (SSE), resumable with Last-Event-ID.
pub(crate) mod audit;
// Shared set-up of the API tests: requests, tokens of each role, projectors, a real port.
pub(crate) mod support;
// Command routes: the lifecycle, dedupe by identity, 409/412, idempotency keys.
mod commands;
// Query routes: filters, sorts, keyset pages under concurrent writes, ETag/304, runs:count.
mod queries;
// Search of the list: run id prefix, initiator name, context/identity key=value; tenant-scoped
// and keyset-paged; each answered from an index (EXPLAIN).
mod search;
// Read-your-writes: min_position waits for the projector, or answers 503 projection-behind.
mod read_your_writes;
// Tenant isolation on every route: another tenant's things answer exactly like missing ones.
mod isolation;
// Roles: reader, writer, auditor, admin; 401 for missing, bad or revoked tokens.
mod roles;
// The notification feed: own notices only, pages, unread_only, read state across a rebuild.
mod notifications;
// Concurrency: 50 queues of one identity, 16 progress reporters.
mod concurrency;
// Bad input of every class: a problem naming the field, never a 500, nothing written.
mod bad_input;
// Operations: health, readiness, metrics, projection status and rebuilds.
mod operations;
// The OpenAPI document: every route the router serves, and a well-formed 3.1 document.
mod openapi;
// Over real HTTP on a random port: a client's whole conversation, request ids, 413.
mod http;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use runledger_api::auth::Role;
use runledger_api::tokens::{NewToken, create_token};
use runledger_api::{ApiConfig, AppState, app};
use std::sync::Arc;

use runledger_core::{Clock, TenantId};
use serde_json::Value;

use crate::helpers::{TestStore, WallClock};

/// The base URL the tests' API is configured with (it only shapes `view_url`s).
pub(crate) const PUBLIC_URL: &str = "http://test";

/// The store of one fresh database and the API over it.
pub(crate) struct TestApi {
    pub(crate) store: TestStore,
    pub(crate) app: Router,
    pub(crate) config: ApiConfig,
    /// The clock the app reads (the wall clock unless a test set another).
    pub(crate) clock: Arc<dyn Clock>,
}

/// An answer of the API, its body read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    /// The body as JSON (`Value::Null` when empty).
    pub(crate) body: Value,
}

impl TestApi {
    pub(crate) async fn new() -> Self {
        Self::with_clock(Arc::new(WallClock)).await
    }

    /// A fresh API that reads time from `clock`.
    pub(crate) async fn with_clock(clock: Arc<dyn Clock>) -> Self {
        let store = TestStore::new().await;
        let config = ApiConfig::new(PUBLIC_URL);
        let app = app(AppState::new(
            store.app_pool.clone(),
            config.clone(),
            Arc::clone(&clock),
        ));
        Self {
            store,
            app,
            config,
            clock,
        }
    }

    /// A new bearer secret for `tenant` in `role`.
    pub(crate) async fn token(&self, tenant: TenantId, role: Role) -> String {
        create_token(
            &self.store.pool,
            &NewToken {
                tenant_id: tenant,
                role,
                user_id: None,
                name: format!("test-{}", role.as_str()),
            },
        )
        .await
        .expect("create a token")
        .secret
    }

    /// `GET path` with `token`, through the router.
    pub(crate) async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(
            Request::get(path)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("a valid request"),
        )
        .await
    }

    /// Sends `request` through the router and reads the whole answer.
    pub(crate) async fn send(&self, request: Request<Body>) -> Answer {
        let (status, headers, bytes) = self.send_raw(request).await;
        Answer::new(status, headers, &bytes)
    }
}

impl Answer {
    /// An answer whose body is JSON, or empty.
    pub(crate) fn new(status: StatusCode, headers: HeaderMap, bytes: &[u8]) -> Self {
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(bytes).unwrap_or_else(|e| {
                panic!("the body is JSON ({e}): {}", String::from_utf8_lossy(bytes))
            })
        };
        Self {
            status,
            headers,
            body,
        }
    }

    /// Asserts a 4xx/5xx `application/problem+json` answer with `status`, naming `field` when
    /// given; returns the problem body.
    #[track_caller]
    pub(crate) fn assert_problem(&self, status: StatusCode, field: Option<&str>) -> &Value {
        assert_eq!(self.status, status, "{:#}", self.body);
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some(runledger_api::error::PROBLEM_JSON),
        );
        assert_eq!(self.body["status"], status.as_u16(), "{:#}", self.body);
        if let Some(field) = field {
            assert_eq!(self.body["field"], field, "{:#}", self.body);
        }
        &self.body
    }
}
