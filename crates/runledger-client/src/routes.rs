//! One method per route of the API, in its groups: commands (writer), queries (reader), audit
//! (auditor), notifications (a user's token), tokens and projections (admin), operations (no
//! token needed). Each sends the wire crate's request and reads its answer.

use reqwest::Method;
use runledger_wire::audit::{ExportParams, LogParams, StateParams};
use runledger_wire::{
    CancelBody, CommandAnswer, CompleteBody, CreatedToken, DispatchFailedBody, EventPage,
    HeartbeatAnswer, NewTokenBody, Notice, NoticePage, NoticeQuery, OperationRun, ProgressBody,
    QueueRunBody, RunCount, RunEvents, RunPage, RunQuery, RunStateAt, RunVerificationBody,
    StartBody, TokenInfo, TokenList,
};
use serde_json::Value;
use uuid::Uuid;

use crate::client::{Call, Client, CommandRequest, Repeat};
use crate::error::ClientError;

/// The answer of `GET /readyz`: whether the server is ready, and why not.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// Whether it answered 200.
    pub ready: bool,
    /// Its checks (`database`, each projection).
    pub body: Value,
}

fn runs(tenant: i64) -> String {
    format!("/v1/tenants/{tenant}/runs")
}

fn run(tenant: i64, run: Uuid, rest: &str) -> String {
    format!("/v1/tenants/{tenant}/runs/{run}{rest}")
}

/// Commands (writer role). Each is sent under a fresh `Idempotency-Key` and retried with it;
/// build a [`CommandRequest`] and call [`Client::send_command`] to choose the key.
impl Client {
    /// The request that queues a run of `tenant`.
    ///
    /// # Errors
    /// [`ClientError::Config`] when the body does not serialize.
    pub fn queue_request(
        &self,
        tenant: i64,
        body: &QueueRunBody,
    ) -> Result<CommandRequest, ClientError> {
        CommandRequest::new(runs(tenant), body)
    }

    /// Queues a run (`created: false` and the active run when one with the same identity is
    /// queued or running).
    ///
    /// # Errors
    /// The problem the server answered (400 for a bad body), or a transport failure.
    pub async fn queue_run(
        &self,
        tenant: i64,
        body: &QueueRunBody,
    ) -> Result<CommandAnswer, ClientError> {
        self.send_command(&self.queue_request(tenant, body)?).await
    }

    /// The request of the command `name` (`start`, `progress`, `complete`, `dispatch-failed`)
    /// on a run.
    ///
    /// # Errors
    /// [`ClientError::Config`] when the body does not serialize.
    pub fn run_command(
        &self,
        tenant: i64,
        run_id: Uuid,
        name: &str,
        body: &impl serde::Serialize,
    ) -> Result<CommandRequest, ClientError> {
        CommandRequest::new(run(tenant, run_id, &format!("/{name}")), body)
    }

    /// Marks a queued run running.
    ///
    /// # Errors
    /// 404 for no such run (or another tenant's), 409 when it is not queued.
    pub async fn start_run(&self, tenant: i64, run_id: Uuid) -> Result<CommandAnswer, ClientError> {
        self.start_run_as(tenant, run_id, &StartBody::default())
            .await
    }

    /// Marks a queued run running, by the worker `body` names: the same worker starting it
    /// again gets the run unchanged (a re-delivered job).
    ///
    /// # Errors
    /// 404 for no such run, 409 when it is not queued or another worker holds it.
    pub async fn start_run_as(
        &self,
        tenant: i64,
        run_id: Uuid,
        body: &StartBody,
    ) -> Result<CommandAnswer, ClientError> {
        self.send_command(&self.run_command(tenant, run_id, "start", body)?)
            .await
    }

    /// Cancels a run: a queued one completes `cancelled` at once, a running one gets a cancel
    /// request its worker sees in its next heartbeat or progress answer.
    ///
    /// # Errors
    /// 404 for no such run, 409 when it has completed.
    pub async fn cancel_run(
        &self,
        tenant: i64,
        run_id: Uuid,
        body: &CancelBody,
    ) -> Result<CommandAnswer, ClientError> {
        self.send_command(&self.run_command(tenant, run_id, "cancel", body)?)
            .await
    }

    /// Records a heartbeat of a running run (not an event) and says whether it was asked to
    /// cancel.
    ///
    /// # Errors
    /// 404 for no such run, 409 when it is queued or completed (`run-completed`).
    pub async fn heartbeat(
        &self,
        tenant: i64,
        run_id: Uuid,
    ) -> Result<HeartbeatAnswer, ClientError> {
        let call =
            Call::get(run(tenant, run_id, "/heartbeat")).with_method(Method::POST, Repeat::Safe);
        self.json(call).await
    }

    /// Adds progress increments (and failures, a total) to a running run.
    ///
    /// # Errors
    /// 409 when it is not running, 422 when counts would exceed the total.
    pub async fn report_progress(
        &self,
        tenant: i64,
        run_id: Uuid,
        body: &ProgressBody,
    ) -> Result<CommandAnswer, ClientError> {
        self.send_command(&self.run_command(tenant, run_id, "progress", body)?)
            .await
    }

    /// Completes a running run (the outcome derived from the counts when not given).
    ///
    /// # Errors
    /// 409 when it is not running.
    pub async fn complete_run(
        &self,
        tenant: i64,
        run_id: Uuid,
        body: &CompleteBody,
    ) -> Result<CommandAnswer, ClientError> {
        self.send_command(&self.run_command(tenant, run_id, "complete", body)?)
            .await
    }

    /// Completes a queued run `failed` because it could not be handed to a worker.
    ///
    /// # Errors
    /// 409 when it is not queued.
    pub async fn dispatch_failed(
        &self,
        tenant: i64,
        run_id: Uuid,
        body: &DispatchFailedBody,
    ) -> Result<CommandAnswer, ClientError> {
        self.send_command(&self.run_command(tenant, run_id, "dispatch-failed", body)?)
            .await
    }
}

/// Queries (reader role): the OperationRun read model.
impl Client {
    /// A page of a tenant's runs.
    ///
    /// # Errors
    /// 400 for a bad filter or page token; 503 when `min_position` is not reached in time.
    pub async fn list_runs(&self, tenant: i64, query: &RunQuery) -> Result<RunPage, ClientError> {
        self.json(Call::get(runs(tenant)).query(query.pairs()))
            .await
    }

    /// How many of a tenant's runs match, in all and per status and/or outcome.
    ///
    /// # Errors
    /// 400 for a bad filter.
    pub async fn count_runs(&self, tenant: i64, query: &RunQuery) -> Result<RunCount, ClientError> {
        self.json(Call::get(format!("{}:count", runs(tenant))).query(query.pairs()))
            .await
    }

    /// A run, as the read model holds it (`min_position`: wait until it has applied that log
    /// position, to read your own write).
    ///
    /// # Errors
    /// 404 for no such run (or another tenant's).
    pub async fn get_run(
        &self,
        tenant: i64,
        run_id: Uuid,
        min_position: Option<i64>,
    ) -> Result<OperationRun, ClientError> {
        let query = min_position
            .map(|p| vec![("min_position", p.to_string())])
            .unwrap_or_default();
        self.json(Call::get(run(tenant, run_id, "")).query(query))
            .await
    }
}

/// Audit (auditor role): the event log itself.
impl Client {
    /// A run's stored events, version 1 first.
    ///
    /// # Errors
    /// 404 for no such run.
    pub async fn run_events(&self, tenant: i64, run_id: Uuid) -> Result<RunEvents, ClientError> {
        self.json(Call::get(run(tenant, run_id, "/events"))).await
    }

    /// A run's state as of a version or a time (the latest without either), folded from its
    /// events.
    ///
    /// # Errors
    /// 400 for both or a malformed one, 404 for no such run (or none yet at the time).
    pub async fn run_state(
        &self,
        tenant: i64,
        run_id: Uuid,
        at: &StateParams,
    ) -> Result<RunStateAt, ClientError> {
        self.json(Call::get(run(tenant, run_id, "/state")).query_of(at)?)
            .await
    }

    /// A page of the tenant's log in safe order.
    ///
    /// # Errors
    /// 400 for a malformed cursor or limit.
    pub async fn tenant_events(
        &self,
        tenant: i64,
        params: &LogParams,
    ) -> Result<EventPage, ClientError> {
        let path = format!("/v1/tenants/{tenant}/events");
        self.json(Call::get(path).query_of(params)?).await
    }

    /// A run's hash chain, verified by the server.
    ///
    /// # Errors
    /// 404 for no such run.
    pub async fn verify_run(
        &self,
        tenant: i64,
        run_id: Uuid,
    ) -> Result<RunVerificationBody, ClientError> {
        self.json(Call::get(run(tenant, run_id, "/verify"))).await
    }

    /// The tenant's log as NDJSON (docs/export-format.md), whole.
    ///
    /// # Errors
    /// 400 for a malformed bound.
    pub async fn export(&self, tenant: i64, params: &ExportParams) -> Result<String, ClientError> {
        let path = format!("/v1/tenants/{tenant}/export");
        self.text(Call::get(path).query_of(params)?).await
    }
}

/// The notification feed of the token's user.
impl Client {
    /// A page of the user's notices, newest first.
    ///
    /// # Errors
    /// 403 when the token is not bound to a user.
    pub async fn notifications(&self, query: &NoticeQuery) -> Result<NoticePage, ClientError> {
        self.json(Call::get("/v1/notifications".to_owned()).query_of(query)?)
            .await
    }

    /// Marks a notice read (again: no change).
    ///
    /// # Errors
    /// 404 for another user's or no such notice.
    pub async fn mark_notification_read(&self, id: Uuid) -> Result<Notice, ClientError> {
        let call = Call::get(format!("/v1/notifications/{id}/read"))
            .with_method(Method::POST, Repeat::Safe);
        self.json(call).await
    }
}

/// Tokens and projections (admin role).
impl Client {
    /// Creates a token; its secret is in the answer and nowhere else.
    ///
    /// # Errors
    /// 400 for a bad body, 403 for a token that is not an admin's.
    pub async fn create_token(&self, body: &NewTokenBody) -> Result<CreatedToken, ClientError> {
        let call = Call::get("/v1/tokens".to_owned())
            .with_method(Method::POST, Repeat::IfNotDone)
            .json(body)?;
        self.json(call).await
    }

    /// Every token, newest first, revoked ones included (never a secret).
    ///
    /// # Errors
    /// 403 for a token that is not an admin's.
    pub async fn list_tokens(&self) -> Result<TokenList, ClientError> {
        self.json(Call::get("/v1/tokens".to_owned())).await
    }

    /// Revokes a token (a revoked one answers the same).
    ///
    /// # Errors
    /// 404 for no such token.
    pub async fn revoke_token(&self, id: Uuid) -> Result<TokenInfo, ClientError> {
        let call = Call::get(format!("/v1/tokens/{id}")).with_method(Method::DELETE, Repeat::Safe);
        self.json(call).await
    }

    /// The read models' status.
    ///
    /// # Errors
    /// 401 without a valid token.
    pub async fn projections(&self) -> Result<Value, ClientError> {
        self.json(Call::get("/v1/projections".to_owned())).await
    }

    /// Starts a rebuild of a read model (or answers the one under way).
    ///
    /// # Errors
    /// 403 for a token that is not an admin's, 404 for no such read model.
    pub async fn rebuild_projection(&self, name: &str) -> Result<Value, ClientError> {
        let call = Call::get(format!("/v1/projections/{name}/rebuild"))
            .with_method(Method::POST, Repeat::Safe);
        self.json(call).await
    }
}

/// Operations (no token needed).
impl Client {
    /// `GET /healthz`: the process is up.
    ///
    /// # Errors
    /// A transport failure when it is not.
    pub async fn healthz(&self) -> Result<Value, ClientError> {
        self.json(Call::get("/healthz".to_owned())).await
    }

    /// `GET /readyz`, asked once: ready (200) or not (503), with its checks.
    ///
    /// # Errors
    /// A transport failure, or an answer that is not the readiness JSON.
    pub async fn readyz(&self) -> Result<Readiness, ClientError> {
        let response = self.once(&Call::get("/readyz".to_owned())).await?;
        let ready = response.status().is_success();
        let status = response.status().as_u16();
        let body = response
            .json()
            .await
            .map_err(|e| ClientError::UnexpectedAnswer {
                status,
                detail: e.to_string(),
            })?;
        Ok(Readiness { ready, body })
    }

    /// `GET /metrics`, in Prometheus' text format.
    ///
    /// # Errors
    /// A transport failure.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        self.text(Call::get("/metrics".to_owned())).await
    }

    /// `GET /openapi.json`: the document of every route.
    ///
    /// # Errors
    /// A transport failure.
    pub async fn openapi(&self) -> Result<Value, ClientError> {
        self.json(Call::get("/openapi.json".to_owned())).await
    }
}
