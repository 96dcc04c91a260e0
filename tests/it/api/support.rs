//! Support for the API tests: requests with bodies and headers, tokens bound to users, the
//! projectors driven to the end of the log (or run live), and the app on a real local port.
//!
//! These extend [`TestApi`] (in `api.rs`) rather than wrap it, so every API test shares one
//! way to build the app, send a request and read an answer.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use runledger_api::auth::Role;
use runledger_api::tokens::{NewToken, create_token};
use runledger_api::{ApiConfig, AppState, app};
use runledger_core::{TenantId, UserId};
use runledger_projections::{
    Projection, ProjectionsConfig, Projector, StepOutcome, run_projectors,
};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use super::{Answer, TestApi};
use crate::helpers::verbs::tenant;
use crate::projections::support::{drain, options};

/// The path of a tenant's runs.
pub(crate) fn runs_path(t: TenantId) -> String {
    format!("/v1/tenants/{t}/runs")
}

/// The path of a run, with `rest` (`""`, `"/start"`, …) appended.
pub(crate) fn run_path(t: TenantId, run: &str, rest: &str) -> String {
    format!("/v1/tenants/{t}/runs/{run}{rest}")
}

/// A bearer token of each role of one tenant.
pub(crate) struct Tokens {
    pub(crate) reader: String,
    pub(crate) writer: String,
    pub(crate) auditor: String,
    pub(crate) admin: String,
}

impl Tokens {
    /// This tenant's token for `role`.
    pub(crate) fn of(&self, role: Role) -> &str {
        match role {
            Role::Reader => &self.reader,
            Role::Writer => &self.writer,
            Role::Auditor => &self.auditor,
            Role::Admin => &self.admin,
        }
    }
}

/// A request under construction: method, path, token, headers and an optional JSON body.
pub(crate) struct Call {
    request: axum::http::request::Builder,
    body: Body,
}

impl Call {
    pub(crate) fn new(method: Method, path: &str, token: Option<&str>) -> Self {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        Self {
            request,
            body: Body::empty(),
        }
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    /// Sets a JSON body.
    pub(crate) fn json(self, body: &Value) -> Self {
        self.raw(body.to_string())
    }

    /// Sets a body of any bytes, labelled as JSON.
    pub(crate) fn raw(mut self, body: impl Into<Bytes>) -> Self {
        self.request = self
            .request
            .header(header::CONTENT_TYPE, "application/json");
        self.body = Body::from(body.into());
        self
    }

    /// Sets a body with no `Content-Type` of its own (a test adds one with [`Call::header`]).
    pub(crate) fn unlabelled(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Body::from(body.into());
        self
    }

    pub(crate) fn build(self) -> Request<Body> {
        self.request.body(self.body).expect("a valid request")
    }
}

impl TestApi {
    /// The same store and configuration, with the API rebuilt after `change` edits the config.
    pub(crate) fn reconfigure(&mut self, change: impl FnOnce(&mut ApiConfig)) {
        change(&mut self.config);
        self.app = app(self.state());
    }

    /// The state the app was built from.
    pub(crate) fn state(&self) -> AppState {
        AppState::new(
            self.store.app_pool.clone(),
            self.config.clone(),
            std::sync::Arc::clone(&self.clock),
        )
    }

    /// A fresh API, one token of each role of tenant 1, and one `inventory.sync` run queued
    /// there (not projected yet): the start of many tests.
    pub(crate) async fn with_queued_run() -> (Self, Tokens, String) {
        let api = Self::new().await;
        let tokens = api.tokens(tenant(1)).await;
        let id = api
            .queue(tenant(1), &tokens.writer, "inventory.sync", json!({}))
            .await;
        (api, tokens, id)
    }

    /// One token of each role of `tenant`.
    pub(crate) async fn tokens(&self, tenant: TenantId) -> Tokens {
        Tokens {
            reader: self.token(tenant, Role::Reader).await,
            writer: self.token(tenant, Role::Writer).await,
            auditor: self.token(tenant, Role::Auditor).await,
            admin: self.token(tenant, Role::Admin).await,
        }
    }

    /// A token of `tenant` in `role` that belongs to `user` (its notification feed).
    pub(crate) async fn user_token(&self, tenant: TenantId, role: Role, user: i64) -> String {
        create_token(
            &self.store.pool,
            &NewToken {
                tenant_id: tenant,
                role,
                user_id: Some(UserId::new(user).expect("a positive user id")),
                name: format!("user-{user}"),
            },
        )
        .await
        .expect("create a user's token")
        .secret
    }

    /// `POST path` with `token` and a JSON body, through the router.
    pub(crate) async fn post(&self, path: &str, token: &str, body: &Value) -> Answer {
        self.send(
            Call::new(Method::POST, path, Some(token))
                .json(body)
                .build(),
        )
        .await
    }

    /// Queues a run of `run_type` with `identity` as `token`; asserts it was created and
    /// returns its id.
    pub(crate) async fn queue(
        &self,
        t: TenantId,
        token: &str,
        run_type: &str,
        identity: Value,
    ) -> String {
        let answer = self
            .post(
                &runs_path(t),
                token,
                &json!({ "type": run_type, "identity": identity }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:#}", answer.body);
        answer.body["run"]["id"]
            .as_str()
            .expect("a run id")
            .to_owned()
    }

    /// Queues a run of `inventory.sync` with `identity` as `token` and starts it; returns its id.
    pub(crate) async fn running_run(&self, t: TenantId, token: &str, identity: Value) -> String {
        let id = self.queue(t, token, "inventory.sync", identity).await;
        let started = self
            .post(&run_path(t, &id, "/start"), token, &json!({}))
            .await;
        assert_eq!(started.status, StatusCode::OK, "{:#}", started.body);
        id
    }

    /// Sends `request` through the router and returns the status, headers and raw body (for
    /// answers that are not JSON).
    pub(crate) async fn send_raw(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("read the body").to_bytes();
        (parts.status, parts.headers, bytes)
    }

    /// How many events the log holds.
    pub(crate) async fn event_count(&self) -> i64 {
        self.store.count("events").await
    }

    /// The projections' settings, with the tests' projector options.
    pub(crate) fn projections_config(&self) -> ProjectionsConfig {
        ProjectionsConfig {
            options: options(),
            ..ProjectionsConfig::default()
        }
    }

    /// Drives both projections (the OperationRun read model and the notification feed) to the
    /// end of the committed log, then gives up their leader locks.
    pub(crate) async fn project(&self) {
        let config = self.projections_config();
        let pool = &self.store.app_pool;
        project_one(Projector::new(
            pool.clone(),
            config.operation_runs(),
            config.options.clone(),
        ))
        .await;
        project_one(Projector::new(
            pool.clone(),
            config.notifications(pool),
            config.options.clone(),
        ))
        .await;
    }

    /// Runs the OperationRun projector live in the background until the handle is stopped.
    pub(crate) fn project_live(&self) -> LiveProjector {
        let config = self.projections_config();
        let mut projector = Projector::new(
            self.store.app_pool.clone(),
            config.operation_runs(),
            config.options,
        );
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            projector
                .run(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
                .expect("the live projector runs");
        });
        LiveProjector { stop, task }
    }

    /// Runs both projectors (the OperationRun read model and the notification feed) live in the
    /// background, as `runledger serve` does, until the handle is stopped.
    pub(crate) fn project_all_live(&self) -> LiveProjector {
        let config = self.projections_config();
        let pool = self.store.app_pool.clone();
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            run_projectors(pool, config, async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
            .expect("the live projectors run");
        });
        LiveProjector { stop, task }
    }

    /// Serves the app on a random local port, as the binary serves it.
    pub(crate) async fn serve(&self) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        self.serve_on(listener)
    }

    /// Serves the app on a random local port whose address is also its public URL, as
    /// `runledger serve` does: `view_url`s and the notices' links point at the served pages, so
    /// a browser can follow them.
    pub(crate) async fn serve_public(&mut self) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let address = listener.local_addr().expect("the bound address");
        self.reconfigure(|config| {
            config.view_base_url = ApiConfig::new(&format!("http://{address}")).view_base_url;
        });
        self.serve_on(listener)
    }

    fn serve_on(&self, listener: tokio::net::TcpListener) -> Served {
        let address = listener.local_addr().expect("the bound address");
        let app = self.app.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve the API");
        });
        Served { address, server }
    }
}

async fn project_one<P: Projection>(mut projector: Projector<P>) {
    let outcome = drain(&mut projector).await;
    assert_eq!(
        outcome,
        StepOutcome::CaughtUp,
        "the projection is not halted"
    );
    projector.release().await;
}

/// A projector running in the background.
pub(crate) struct LiveProjector {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl LiveProjector {
    /// Stops the projector and waits until it has given up its lock.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.expect("the live projector stopped cleanly");
    }
}

/// The app on a local port.
pub(crate) struct Served {
    address: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Served {
    /// The server's address.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// The server's base URL, e.g. `http://127.0.0.1:41234`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Sends a request over a new HTTP/1.1 connection and reads the whole answer.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Answer {
        send_to(self.address, method, path, headers, body).await
    }
}

/// Sends a request to the server at `address` over a new HTTP/1.1 connection and reads the whole
/// answer (a spawned `runledger serve` as well as a [`Served`] app).
pub(crate) async fn send_to(
    address: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Answer {
    let (mut sender, connection) = http1_connection(address).await;
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, address.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(body)).expect("a valid request"))
        .await
        .expect("a response");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("read the body").to_bytes();
    drop(sender);
    let _ = connection.await;
    Answer::new(parts.status, parts.headers, &bytes)
}

/// An HTTP/1.1 connection to `address`, and the task driving it: the task ends once the
/// sender is dropped (how the connection ends does not matter to the tests).
pub(crate) async fn http1_connection<B>(
    address: SocketAddr,
) -> (hyper::client::conn::http1::SendRequest<B>, JoinHandle<()>)
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the API");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("an HTTP/1.1 handshake");
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, connection)
}

/// A problem body without what depends on the request (`instance`, `request_id`).
pub(crate) fn without_request_details(problem: &Value) -> Value {
    let mut problem = problem.clone();
    let object = problem.as_object_mut().expect("a problem object");
    object.remove("instance");
    object.remove("request_id");
    problem
}

/// A route about one run, as a request to build: method, the path after the run id, a body.
pub(crate) struct RunRoute {
    pub(crate) method: Method,
    pub(crate) rest: &'static str,
    /// The role a token needs on it.
    pub(crate) role: Role,
    pub(crate) body: Option<Value>,
}

impl RunRoute {
    /// The request to this route for `run` of `t`, as `token`.
    pub(crate) fn call(&self, t: TenantId, run: &str, token: &str) -> Request<Body> {
        let call = Call::new(
            self.method.clone(),
            &run_path(t, run, self.rest),
            Some(token),
        );
        match &self.body {
            Some(body) => call.json(body).build(),
            None => call.build(),
        }
    }
}

/// Every route that names a run, with a body each would accept for a running run.
pub(crate) fn run_routes() -> Vec<RunRoute> {
    let route = |method: Method, rest, role, body: Option<Value>| RunRoute {
        method,
        rest,
        role,
        body,
    };
    vec![
        route(Method::GET, "", Role::Reader, None),
        route(Method::GET, "/events", Role::Auditor, None),
        route(Method::GET, "/state", Role::Auditor, None),
        route(Method::GET, "/verify", Role::Auditor, None),
        route(Method::POST, "/start", Role::Writer, Some(json!({}))),
        route(
            Method::POST,
            "/progress",
            Role::Writer,
            Some(json!({"success": 1})),
        ),
        route(Method::POST, "/complete", Role::Writer, Some(json!({}))),
        route(
            Method::POST,
            "/dispatch-failed",
            Role::Writer,
            Some(json!({"code": "x", "message": "y"})),
        ),
    ]
}
