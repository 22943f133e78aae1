//! What the journeys speak: GraphQL over HTTP and WebSocket, the chat protocol, uploads.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{
        Message,
        client::IntoClientRequest,
        http::{HeaderName, HeaderValue},
    },
};

/// A WebSocket client.
pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// POSTs a GraphQL query to `base`, with `Authorization: Bearer <token>` when given; returns
/// the whole body, asserting a 200.
pub async fn graphql_response(
    base: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .json(&json!({"query": query, "variables": variables}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("POST /graphql");
    let status = response.status();
    let body: Value = response.json().await.expect("a GraphQL response");
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// POSTs a GraphQL query to `base` as the holder of `token` (anonymously without); returns the
/// data, asserting a 200 and no errors.
pub async fn graphql_as(base: &str, token: Option<&str>, query: &str, variables: Value) -> Value {
    let body = graphql_response(base, token, query, variables).await;
    assert!(body.get("errors").is_none(), "{query}: {body}");
    body["data"].clone()
}

/// POSTs a GraphQL query to `gateway` anonymously; returns the data, asserting a 200 and no
/// errors.
pub async fn graphql(gateway: &str, query: &str, variables: Value) -> Value {
    graphql_as(gateway, None, query, variables).await
}

/// Opens a WebSocket on `path` of the gateway, with an optional subprotocol.
pub async fn websocket(gateway: &str, path: &str, protocol: Option<&str>) -> Socket {
    let headers: Vec<(&str, String)> = protocol
        .map(|protocol| ("sec-websocket-protocol", protocol.to_owned()))
        .into_iter()
        .collect();
    websocket_with(gateway, path, &headers)
        .await
        .unwrap_or_else(|status| panic!("the WebSocket on {path} opens, not {status}"))
}

/// Opens a WebSocket on `path` of `base` with extra request headers; the HTTP status of a
/// refused handshake otherwise (0: no HTTP answer).
pub async fn websocket_with(
    base: &str,
    path: &str,
    headers: &[(&str, String)],
) -> Result<Socket, u16> {
    let url = format!("{}{path}", base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("a WebSocket request");
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    match connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(_) => Err(0),
    }
}

/// Sends a JSON text frame.
pub async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .expect("a sent frame");
}

/// The next JSON text frame within `wait` (skipping GraphQL keep-alives), or `None`.
pub async fn next_json(socket: &mut Socket, wait: Duration) -> Option<Value> {
    tokio::time::timeout(wait, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("JSON frames");
                    if matches!(value["type"].as_str(), Some("ka" | "ping" | "pong")) {
                        continue;
                    }
                    return value;
                }
                Some(Ok(_)) => {}
                other => panic!("the socket ended: {other:?}"),
            }
        }
    })
    .await
    .ok()
}

/// The next frame of `kind`, skipping others, within `wait`.
pub async fn next_of_type(socket: &mut Socket, kind: &str, wait: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next_json(socket, left).await {
            Some(frame) if frame["type"] == kind => return frame,
            Some(_) => {}
            None => panic!("no {kind} frame within {wait:?}"),
        }
    }
}

/// A PNG of `width`×`height` with a gradient, so its thumbnail has something to keep.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("a PNG");
    bytes.into_inner()
}
