//! [`Client`]: the base URL, the token and the retry policy, and the one place requests are
//! sent, answers read and retries made.

use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Response, Url};
use runledger_wire::{CommandAnswer, Problem};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ClientError;
use crate::retry::{RetryPolicy, retry_after, retryable_status};

/// How long one attempt may take, connection included, unless the client is told otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one ledger server, acting with one bearer token. Cheap to clone; clones share
/// their connections.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    authorization: HeaderValue,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Whether an attempt that failed may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Reads, and commands with an `Idempotency-Key`: any failure before an answer, and any
    /// retryable status, is worth another attempt.
    Safe,
    /// Other writes (creating a token): only what certainly did nothing, a connection that
    /// never opened or a retryable status.
    IfNotDone,
}

/// One request as the routes describe it.
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Option<serde_json::Value>,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) repeat: Repeat,
}

impl Call {
    pub(crate) fn get(path: String) -> Self {
        Self {
            method: Method::GET,
            path,
            query: Vec::new(),
            body: None,
            headers: Vec::new(),
            repeat: Repeat::Safe,
        }
    }

    pub(crate) fn with_method(mut self, method: Method, repeat: Repeat) -> Self {
        self.method = method;
        self.repeat = repeat;
        self
    }

    pub(crate) fn query(mut self, pairs: Vec<(&'static str, String)>) -> Self {
        self.query = pairs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        self
    }

    /// The query string of a parameters struct: its fields that are present, by name.
    pub(crate) fn query_of(mut self, params: &impl Serialize) -> Result<Self, ClientError> {
        let value = serde_json::to_value(params)
            .map_err(|e| ClientError::Config(format!("query parameters: {e}")))?;
        if let serde_json::Value::Object(map) = value {
            for (name, value) in map {
                let text = match value {
                    serde_json::Value::Null => continue,
                    serde_json::Value::String(text) => text,
                    other => other.to_string(),
                };
                self.query.push((name, text));
            }
        }
        Ok(self)
    }

    pub(crate) fn json(mut self, body: &impl Serialize) -> Result<Self, ClientError> {
        self.body = Some(
            serde_json::to_value(body)
                .map_err(|e| ClientError::Config(format!("request body: {e}")))?,
        );
        Ok(self)
    }

    pub(crate) fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// A command to send: the route, its body, and the headers that make it safe to retry and pin
/// the version it expects. The routes' methods build one; build it yourself to choose the
/// `Idempotency-Key` (e.g. from the product's job id, so that a job re-run after a crash sends
/// its commands with the same keys) or to send `If-Match`.
#[derive(Debug, Clone)]
pub struct CommandRequest {
    pub(crate) path: String,
    pub(crate) body: serde_json::Value,
    /// The `Idempotency-Key`: a fresh one per request unless set.
    pub idempotency_key: String,
    /// `If-Match`: the version the run must be at.
    pub if_match: Option<u64>,
}

impl CommandRequest {
    /// A command to `path` (below the base URL) with `body`, under a fresh idempotency key.
    ///
    /// # Errors
    /// [`ClientError::Config`] when the body does not serialize.
    pub fn new(path: String, body: &impl Serialize) -> Result<Self, ClientError> {
        Ok(Self {
            path,
            body: serde_json::to_value(body)
                .map_err(|e| ClientError::Config(format!("request body: {e}")))?,
            idempotency_key: fresh_key(),
            if_match: None,
        })
    }

    /// The same command under the key `key`.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = key.into();
        self
    }

    /// The same command, only if the run is at `version`.
    pub fn if_match(mut self, version: u64) -> Self {
        self.if_match = Some(version);
        self
    }
}

/// A key no other request has: `rl-` and a random UUID.
pub(crate) fn fresh_key() -> String {
    format!("rl-{}", Uuid::new_v4())
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8080`) with the bearer
    /// token `token`, retrying with [`RetryPolicy::default`].
    ///
    /// # Errors
    /// [`ClientError::Config`] when the URL does not parse or the token is not a header value.
    pub fn new(base_url: &str, token: &str) -> Result<Self, ClientError> {
        let base = Url::parse(base_url.trim_end_matches('/'))
            .map_err(|e| ClientError::Config(format!("base URL: {e}")))?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ClientError::Config("the token is not a valid header value".into()))?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(DEFAULT_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            authorization,
            retry: RetryPolicy::default(),
        })
    }

    /// The same client with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// Sends a command: its key and `If-Match` headers, retried per the policy with the same
    /// key, so a retry after a lost answer is answered from the first send and appends nothing.
    ///
    /// # Errors
    /// The problem the server answered, or [`ClientError::Transport`] after the retries (the
    /// outcome is then unknown; the same request is safe to send again).
    pub async fn send_command(
        &self,
        command: &CommandRequest,
    ) -> Result<CommandAnswer, ClientError> {
        let mut call = Call::get(command.path.clone()).with_method(Method::POST, Repeat::Safe);
        call.body = Some(command.body.clone());
        call = call.header("idempotency-key", command.idempotency_key.clone());
        if let Some(version) = command.if_match {
            call = call.header("if-match", format!("\"{version}\""));
        }
        self.json(call).await
    }

    /// Sends `call` and reads its JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, ClientError> {
        let response = self.send(&call).await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(ClientError::Transport)?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::UnexpectedAnswer {
            status,
            detail: format!("the answer does not read as expected: {e}"),
        })
    }

    /// Sends `call` and reads its answer as text.
    pub(crate) async fn text(&self, call: Call) -> Result<String, ClientError> {
        let response = self.send(&call).await?;
        response.text().await.map_err(ClientError::Transport)
    }

    /// Sends `call` once, and returns the answer whatever its status (`readyz` answers 503 when
    /// not ready: that is its answer, not a failure to retry).
    pub(crate) async fn once(&self, call: &Call) -> Result<Response, ClientError> {
        self.request(call)
            .send()
            .await
            .map_err(ClientError::Transport)
    }

    /// Sends `call` until it succeeds, fails for good, or the policy gives up; a success status
    /// is the answer, anything else becomes a [`ClientError`].
    async fn send(&self, call: &Call) -> Result<Response, ClientError> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.request(call).send().await;
            let (error, wait) = match result {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = retry_after(response.headers());
                    let error = problem_of(response).await;
                    if !retryable_status(status) {
                        return Err(error);
                    }
                    (error, retry_after.map(Duration::from_secs))
                }
                Err(error) => {
                    let repeatable = match call.repeat {
                        Repeat::Safe => {
                            error.is_connect() || error.is_timeout() || error.is_request()
                        }
                        Repeat::IfNotDone => error.is_connect(),
                    };
                    if !repeatable {
                        return Err(ClientError::Transport(error));
                    }
                    (ClientError::Transport(error), None)
                }
            };
            let pause = self.retry.delay(attempt, wait);
            if attempt >= self.retry.max_attempts
                || started.elapsed() + pause > self.retry.max_elapsed
            {
                return Err(error);
            }
            tracing::debug!(path = %call.path, attempt, pause_ms = pause.as_millis(), %error, "retrying");
            tokio::time::sleep(pause).await;
        }
    }

    fn request(&self, call: &Call) -> reqwest::RequestBuilder {
        let url = format!("{}{}", self.base.as_str().trim_end_matches('/'), call.path);
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .header(AUTHORIZATION, self.authorization.clone());
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        request
    }
}

/// The error of an answer that is not a success: its problem body, or what it was instead.
async fn problem_of(response: Response) -> ClientError {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    match response.bytes().await {
        Ok(bytes) => match serde_json::from_slice::<Problem>(&bytes) {
            Ok(problem) => ClientError::Problem {
                problem: Box::new(problem),
                retry_after,
            },
            Err(_) => ClientError::UnexpectedAnswer {
                status,
                detail: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            },
        },
        Err(error) => ClientError::Transport(error),
    }
}
