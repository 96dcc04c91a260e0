//! The bench's HTTP client: one HTTP/1.1 keep-alive connection to the API, with a bearer token.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// One connection; requests on it go one at a time.
pub(crate) struct Client {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    authorization: String,
}

impl Client {
    /// Connects to the API at `address`, sending `token` with every request.
    pub(crate) async fn connect(address: SocketAddr, token: &str) -> anyhow::Result<Self> {
        let tcp = tokio::net::TcpStream::connect(address).await?;
        tcp.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            // The connection ends when the client is dropped; how it ends does not matter.
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            host: address.to_string(),
            authorization: format!("Bearer {token}"),
        })
    }

    /// Sends one request and reads the whole answer.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::AUTHORIZATION, &self.authorization);
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        self.sender.ready().await?;
        let response = self
            .sender
            .send_request(request.body(Full::new(body))?)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Opens a server-sent event stream at `path` (`Accept: text/event-stream`) and returns its
    /// status and its body, read as it comes; the connection carries nothing else meanwhile.
    pub(crate) async fn open_stream(
        &mut self,
        path: &str,
    ) -> anyhow::Result<(StatusCode, Incoming)> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::AUTHORIZATION, &self.authorization)
            .header(header::ACCEPT, "text/event-stream")
            .body(Full::new(Bytes::new()))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        Ok((response.status(), response.into_body()))
    }
}
