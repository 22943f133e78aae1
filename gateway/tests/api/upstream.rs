//! Real upstreams for the gateway's tests: small hyper servers on port 0.
//!
//! | path | answer |
//! |---|---|
//! | `/…` (default) | JSON echo: instance name, method, path, query, headers, body length |
//! | `/slow?ms=N` | 200 after N ms |
//! | `/empty` | 204, no body |
//! | `/hang` | never answers |
//! | `/download?bytes=N` | N bytes, streamed in 64 KiB chunks |
//! | `/upload` | reads the body to the end, answers `{"received": N}` |
//! | `/ws` | WebSocket echo |

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, stream};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::{Request, Response, body::Frame, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role};

type Body = BoxBody<Bytes, Infallible>;

/// A running test upstream.
pub struct Upstream {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Requests to `/slow` that have arrived.
    pub slow_arrived: Arc<AtomicUsize>,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
    /// Its task; aborted on drop.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts an upstream that calls itself `name`.
pub async fn start(name: &'static str) -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address: SocketAddr = listener.local_addr().expect("address");
    let slow_arrived = Arc::new(AtomicUsize::new(0));
    let arrivals = slow_arrived.clone();
    let connections = Arc::new(AtomicUsize::new(0));
    let accepted = connections.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| answer(request, name, arrivals.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Upstream {
        url: format!("http://{address}"),
        slow_arrived,
        connections,
        task,
    }
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed()
}

fn query_number(request: &Request<hyper::body::Incoming>, key: &str) -> u64 {
    request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{key}=")))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

async fn answer(
    mut request: Request<hyper::body::Incoming>,
    name: &'static str,
    slow_arrived: Arc<AtomicUsize>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let response = match path.as_str() {
        "/slow" => {
            slow_arrived.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(query_number(&request, "ms"))).await;
            Response::new(full("done"))
        }
        "/empty" => Response::builder()
            .status(204)
            .body(full(""))
            .expect("a response"),
        "/hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(full("never"))
        }
        "/download" => {
            let total = query_number(&request, "bytes");
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let chunks = stream::unfold(total, move |left| {
                let chunk = chunk.clone();
                async move {
                    (left > 0).then(|| {
                        let size = left.min(chunk.len() as u64);
                        (
                            Ok::<_, Infallible>(Frame::data(chunk.slice(..size as usize))),
                            left - size,
                        )
                    })
                }
            });
            Response::new(BodyExt::boxed(StreamBody::new(chunks)))
        }
        "/upload" => {
            let mut received = 0_u64;
            let mut body = request.into_body();
            while let Some(Ok(frame)) = body.frame().await {
                received += frame.data_ref().map_or(0, |data| data.len() as u64);
            }
            Response::new(full(json!({"received": received}).to_string()))
        }
        "/ws" => {
            let key = request
                .headers()
                .get("sec-websocket-key")
                .cloned()
                .expect("a WebSocket key");
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let upgraded = upgrade.await.expect("upgraded");
                let mut socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    None,
                )
                .await;
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() || message.is_binary() {
                        let _ = socket.send(message).await;
                    }
                }
            });
            Response::builder()
                .status(101)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
                .body(full(""))
                .expect("a response")
        }
        _ => {
            let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (header, value) in request.headers() {
                headers
                    .entry(header.as_str().to_owned())
                    .or_default()
                    .push(value.to_str().unwrap_or("?").to_owned());
            }
            let method = request.method().to_string();
            let query = request.uri().query().map(str::to_owned);
            let body = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().len())
                .unwrap_or(0);
            let echo = json!({"instance": name, "method": method, "path": path, "query": query, "headers": headers, "body_len": body});
            Response::builder()
                .header("content-type", "application/json")
                .header("connection", "x-upstream-hop")
                .header("x-upstream-hop", "must not reach the client")
                .header("keep-alive", "timeout=5")
                .body(full(echo.to_string()))
                .expect("a response")
        }
    };
    Ok(response)
}
