//! What the journeys speak: GraphQL over HTTP and WebSocket, the chat protocol, uploads.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

/// A WebSocket client.
pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// POSTs a GraphQL query to `gateway`; returns the body, asserting a 200 and no errors.
pub async fn graphql(gateway: &str, query: &str, variables: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{gateway}/graphql"))
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .expect("POST /graphql");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("a GraphQL response");
    assert!(body.get("errors").is_none(), "{query}: {body}");
    body["data"].clone()
}

/// Opens a WebSocket on `path` of the gateway, with an optional subprotocol.
pub async fn websocket(gateway: &str, path: &str, protocol: Option<&str>) -> Socket {
    let url = format!("{}{path}", gateway.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("a WebSocket request");
    if let Some(protocol) = protocol {
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(protocol).expect("a header value"),
        );
    }
    let (socket, _) = connect_async(request).await.expect("the WebSocket opens");
    socket
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
