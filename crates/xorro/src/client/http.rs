//! A small HTTP/1.1 client for the node's API (hyper over one TCP connection per request).
//!
//! Every transport failure (nothing listening, connection closed) is "no xorro node answers"
//! (exit code 3); an error answer is turned into an [`Exit`] with the server's message and
//! hint (exit code 2 for 400, else 1).

use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use crate::api::types::ErrorBody;
use crate::error::{Code, Exit};
use crate::parse;

/// How long to wait for the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Lookups end by themselves (the engine's lookup timeout); this only guards against a hung
/// daemon.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// The API of one node.
#[derive(Debug, Clone)]
pub struct Api {
    addr: String,
}

impl Api {
    /// `api` is host:port, optionally written as `http://host:port/`.
    pub fn new(api: &str) -> anyhow::Result<Self> {
        let trimmed = api
            .trim()
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let addr = parse::host_port("--api", trimmed).map_err(Exit::usage)?;
        Ok(Api { addr })
    }

    /// host:port.
    #[cfg(test)]
    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Response<Incoming>> {
        let stream =
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr)).await {
                Ok(Ok(s)) => s,
                _ => return Err(Exit::unreachable(&self.addr)),
            };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| Exit::unreachable(&self.addr))?;
        tokio::spawn(async move {
            // The connection ends with the request; its errors show up in `send_request`.
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.addr);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .context("cannot build the request")?;
        match tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(Exit::unreachable(&self.addr)),
            Err(_) => Err(Exit::failed(
                format!(
                    "the node at {} did not answer within {} s",
                    self.addr,
                    REQUEST_TIMEOUT.as_secs()
                ),
                None,
            )),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<T> {
        let resp = self.send(method, path, body).await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|_| Exit::unreachable(&self.addr))?
            .to_bytes();
        if !status.is_success() {
            return Err(error_answer(status, &bytes));
        }
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the node at {} sent an answer this xorro does not understand",
                self.addr
            )
        })
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let body = serde_json::to_vec(body).context("cannot encode the request")?;
        self.call(Method::POST, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::DELETE, path, None).await
    }

    /// `GET path` of an NDJSON stream: `on_line` gets each line as it arrives.
    pub async fn get_lines(
        &self,
        path: &str,
        mut on_line: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let resp = self.send(Method::GET, path, None).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map_err(|_| Exit::unreachable(&self.addr))?
                .to_bytes();
            return Err(error_answer(status, &bytes));
        }
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Exit::unreachable(&self.addr))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if line.len() > 1 {
                    on_line(&line[..line.len() - 1])?;
                }
            }
        }
        if !pending.is_empty() {
            on_line(&pending)?;
        }
        Ok(())
    }
}

/// An error status with its `{error, hint}` body.
fn error_answer(status: StatusCode, body: &[u8]) -> anyhow::Error {
    let code = if status == StatusCode::BAD_REQUEST {
        Code::Usage
    } else {
        Code::Failed
    };
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => Exit {
            code,
            message: e.error,
            hint: e.hint,
        }
        .into(),
        Err(_) => Exit {
            code,
            message: format!("the node answered {status}"),
            hint: None,
        }
        .into(),
    }
}

/// Percent-encodes `s` for a URL query value.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(query_escape("a b&c=é"), "a%20b%26c%3D%C3%A9");
    }

    #[test]
    fn api_addresses() {
        assert_eq!(
            Api::new("http://127.0.0.1:7881/").unwrap().addr(),
            "127.0.0.1:7881"
        );
        assert_eq!(Api::new("localhost:7881").unwrap().addr(), "localhost:7881");
        assert!(Api::new("localhost").is_err());
    }

    #[tokio::test]
    async fn nobody_listening_is_unreachable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let api = Api::new(&format!("127.0.0.1:{port}")).unwrap();
        let err = api
            .get::<serde_json::Value>("/v1/status")
            .await
            .unwrap_err();
        assert_eq!(crate::error::classify(&err).0, Code::Unreachable);
    }
}
