//! Set-up of the client tests: the real app on a random local port, optionally behind a layer
//! that loses the first answer of chosen requests (the request is served, its answer replaced by
//! a 503, as a proxy or a dropped connection would), and clients with the tests' tokens.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use runledger_api::app;
use runledger_client::{Client, RetryPolicy};
use std::time::Duration;

use crate::api::TestApi;

/// A served app and its address.
pub(crate) struct ServedApp {
    pub(crate) url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ServedApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What the answer-losing layer saw: each request's path and `Idempotency-Key`, and which
/// answers it replaced.
#[derive(Debug, Default)]
pub(crate) struct Losses {
    /// Paths ending with this lose their first answer.
    pub(crate) path_suffix: String,
    /// How many answers to lose.
    pub(crate) remaining: usize,
    /// (path, key, lost) of every request, in order.
    pub(crate) seen: Vec<(String, Option<String>, bool)>,
}

/// Serves the test API's app, as the binary does.
pub(crate) async fn serve(api: &TestApi) -> ServedApp {
    serve_router(app(api.state())).await
}

/// Serves the app behind a layer that serves each request and then, while `losses` has some
/// left for its path, replaces its answer with a 503 and `Retry-After: 0`.
pub(crate) async fn serve_losing(api: &TestApi, losses: Arc<Mutex<Losses>>) -> ServedApp {
    let router = app(api.state()).layer(axum::middleware::from_fn(move |request, next| {
        lose_answer(Arc::clone(&losses), request, next)
    }));
    serve_router(router).await
}

async fn lose_answer(losses: Arc<Mutex<Losses>>, request: Request<Body>, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let key = request
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let answer = next.run(request).await;
    let mut losses = losses.lock().expect("the losses");
    let lose = path.ends_with(&losses.path_suffix) && losses.remaining > 0;
    if lose {
        losses.remaining -= 1;
    }
    losses.seen.push((path, key, lose));
    if lose {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "0")],
            "lost",
        )
            .into_response();
    }
    answer
}

async fn serve_router(router: axum::Router) -> ServedApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let url = format!("http://{}", listener.local_addr().expect("the address"));
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve the API");
    });
    ServedApp { url, server }
}

/// A client of `served` with `token`, retrying quickly (the tests' servers answer at once).
pub(crate) fn client(served: &ServedApp, token: &str) -> Client {
    Client::new(&served.url, token)
        .expect("a client")
        .with_retry(RetryPolicy {
            base_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        })
}
