//! Graceful shutdown: a request in flight when shutdown begins still completes; new
//! connections are refused afterwards.

use testing::TestBackend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::spawn_app;

/// Reads from `stream` until `needle` has arrived; returns everything read.
async fn read_until(stream: &mut tokio::net::TcpStream, needle: &str) -> String {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    while !String::from_utf8_lossy(&received).contains(needle) {
        let read = stream.read(&mut buffer).await.expect("read");
        assert!(
            read > 0,
            "connection closed before {needle:?}: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_request_in_flight_finishes_during_shutdown() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let body = br#"{"name":"Late","email":"late@example.com"}"#;
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        testing::admin_token(crate::helpers::TEST_ADMIN_ID),
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send the head");
    // The interim response proves the server has the request in hand.
    read_until(&mut stream, "100 Continue").await;

    let server = app.server;
    let address_after = server.address.clone();
    let stopping = tokio::spawn(server.stop());
    stream.write_all(body).await.expect("send the body");
    let response = read_until(&mut stream, "late@example.com").await;
    assert!(response.contains("201 Created"), "{response}");
    stopping.await.expect("the server stopped cleanly");

    let refused = reqwest::get(format!("{address_after}/healthz")).await;
    assert!(refused.is_err(), "no new requests after shutdown");
}
