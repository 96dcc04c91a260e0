//! A private primary (migrated, with the application role) and an asynchronous streaming
//! standby of it; the API on the primary with the standby as its read replica, the projectors
//! running live on the primary as `runledger serve` runs them.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use runledger_api::auth::Role;
use runledger_api::replicas::{ReplicaConfig, ReplicaState, ReplicaTarget, Replicas};
use runledger_api::tokens::{NewToken, create_token};
use runledger_api::{ApiConfig, AppState, app};
use runledger_core::Clock;
use runledger_pg::EmbeddedPostgres;
use runledger_projections::{ProjectionsConfig, run_projectors};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::api::{Answer, PUBLIC_URL};
use crate::helpers::WallClock;
use crate::helpers::verbs::tenant;
use crate::projections::support::options;
use crate::robust::support::{Cluster, DATABASE, application_url};

/// How long a test waits for something that happens by itself (a replay, a probe).
pub(crate) const SETTLE: Duration = Duration::from_secs(20);

/// A primary, its standby, and the API reading the standby.
pub(crate) struct Replicated {
    pub(crate) primary: Cluster,
    pub(crate) standby: Option<EmbeddedPostgres>,
    /// The API with the standby as its replica.
    pub(crate) app: Router,
    /// The same API without replicas: what the primary answers.
    pub(crate) primary_app: Router,
    pub(crate) state: AppState,
    /// The replica's name in logs and metrics.
    pub(crate) replica_name: String,
    pub(crate) writer: String,
    pub(crate) reader: String,
    stop_projectors: watch::Sender<bool>,
    projectors: JoinHandle<()>,
}

impl Replicated {
    /// Starts both servers and the API with `config`; returns once the replica is in use.
    pub(crate) async fn start(config: ReplicaConfig) -> Self {
        let primary = Cluster::start().await;
        let admin: PgPool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&primary.superuser_url(DATABASE))
            .await
            .expect("connect as the superuser");
        runledger_store::MIGRATOR
            .run(&admin)
            .await
            .expect("migrate the primary");
        primary.create_application_role().await;
        let tokens = |role: Role| NewToken {
            tenant_id: tenant(1),
            role,
            user_id: None,
            name: format!("replica-{}", role.as_str()),
        };
        let writer = create_token(&admin, &tokens(Role::Writer)).await.unwrap();
        let reader = create_token(&admin, &tokens(Role::Reader)).await.unwrap();
        admin.close().await;

        // A base backup of the migrated primary: the same roles, schema and tokens.
        let standby = primary.start_standby("replica_1", 5433).await;
        let replica_options: PgConnectOptions = application_url(&standby.database_url(DATABASE))
            .parse()
            .expect("the standby's URL");
        let target = ReplicaTarget::new(replica_options);
        let replica_name = target.name.clone();

        let pool: PgPool = PgPoolOptions::new()
            .max_connections(16)
            .connect(&primary.application_url())
            .await
            .expect("connect to the primary as the application role");
        let clock: Arc<dyn Clock> = Arc::new(WallClock);
        let primary_state = AppState::new(pool.clone(), ApiConfig::new(PUBLIC_URL), clock);
        let replicas = Replicas::start(&pool, vec![target], config);
        let state = primary_state.clone().with_replicas(replicas);

        let projections = ProjectionsConfig {
            options: options(),
            live: Some(state.live.clone()),
        };
        let (stop_projectors, mut stopped) = watch::channel(false);
        let projectors = tokio::spawn(async move {
            run_projectors(pool, projections, async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
            .expect("the projectors run");
        });

        let replicated = Self {
            primary,
            standby: Some(standby),
            app: app(state.clone()),
            primary_app: app(primary_state),
            state,
            replica_name,
            writer: writer.secret,
            reader: reader.secret,
            stop_projectors,
            projectors,
        };
        replicated.wait_until_in_use(true).await;
        // The projectors create the read models on the primary at start: until the replica has
        // replayed that, its queries answer 503 `read-model-not-built`.
        let deadline = tokio::time::Instant::now() + SETTLE;
        while replicated.get("/v1/tenants/1/runs").await.status != StatusCode::OK {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the replica has no read model"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        replicated
    }

    /// The standby.
    pub(crate) fn standby(&self) -> &EmbeddedPostgres {
        self.standby.as_ref().expect("the standby runs")
    }

    /// What the probe last found of the replica.
    pub(crate) fn replica_state(&self) -> ReplicaState {
        self.state.replicas.states().remove(0)
    }

    /// Waits (bounded) until the probes say the replica is in use, or is not.
    pub(crate) async fn wait_until_in_use(&self, in_use: bool) {
        let deadline = tokio::time::Instant::now() + SETTLE;
        while self.replica_state().in_use != in_use {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the replica's use is still not {in_use}: {:?}",
                self.replica_state()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Queues a run of tenant 1 with a fresh identity; its id and the position answered.
    pub(crate) async fn queue(&self) -> (String, i64) {
        let body =
            json!({"type": "inventory.sync", "identity": {"n": uuid::Uuid::new_v4().to_string()}});
        let request = Request::post("/v1/tenants/1/runs")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.writer))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("a request");
        let answer = send(&self.app, request).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:#}", answer.body);
        (
            answer.body["run"]["id"].as_str().expect("an id").to_owned(),
            answer.body["position"].as_i64().expect("a position"),
        )
    }

    /// `GET path` as the reader, through the API with the replica.
    pub(crate) async fn get(&self, path: &str) -> Answer {
        send(&self.app, self.get_request(path)).await
    }

    /// `GET path` as the reader, through the API on the primary only.
    pub(crate) async fn get_from_primary(&self, path: &str) -> Answer {
        send(&self.primary_app, self.get_request(path)).await
    }

    fn get_request(&self, path: &str) -> Request<Body> {
        Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.reader))
            .body(Body::empty())
            .expect("a request")
    }

    /// The ids of tenant 1's runs as the list shows them (`query`: `?min_position=…` or empty).
    pub(crate) async fn listed(&self, query: &str) -> Vec<String> {
        let answer = self.get(&format!("/v1/tenants/1/runs{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
        ids(&answer.body)
    }

    /// Waits (bounded) until the list without `min_position` shows `run`.
    pub(crate) async fn wait_until_listed(&self, run: &str) {
        let deadline = tokio::time::Instant::now() + SETTLE;
        while !self.listed("").await.iter().any(|id| id == run) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{run} is still not listed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `/metrics` as text.
    pub(crate) async fn metrics(&self) -> String {
        let request = Request::get("/metrics")
            .body(Body::empty())
            .expect("a request");
        let response = self.app.clone().oneshot(request).await.unwrap();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("the body")
            .to_bytes();
        String::from_utf8(bytes.to_vec()).expect("text")
    }

    /// Stops the projectors, then both servers.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop_projectors.send(true);
        self.projectors.await.expect("the projectors stop");
        if let Some(standby) = self.standby.take() {
            tokio::task::spawn_blocking(move || standby.stop())
                .await
                .expect("the stop task")
                .expect("stop the standby");
        }
        self.primary.stop().await;
    }
}

/// The run ids of a list's body.
pub(crate) fn ids(body: &Value) -> Vec<String> {
    body["runs"]
        .as_array()
        .expect("a list of runs")
        .iter()
        .map(|run| run["id"].as_str().expect("an id").to_owned())
        .collect()
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .expect("the body")
        .to_bytes();
    Answer::new(parts.status, parts.headers, &bytes)
}
