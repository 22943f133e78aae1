//! The direct path's own cases: stale pooled connections, response framings, pipelined
//! requests, the hand-over to hyper in the middle of a connection, malformed upstream heads.
//! A scripted upstream ([`ScriptedUpstream`]) answers with exact bytes.

use std::sync::atomic::Ordering;

use serde_json::Value;
use testing::error_code;

use crate::{
    helpers::{config, exchange_raw, route, spawn},
    scripted::ScriptedUpstream,
    upstream,
};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

pub fn one_thread(upstream: &str) -> gateway::config::GatewayConfig {
    let mut config = config(vec![route("/", &[upstream])]);
    // One thread, so the second request finds the connection the first one pooled.
    config.server.threads = 1;
    config
}

#[tokio::test]
async fn an_idempotent_request_on_a_connection_the_upstream_dropped_is_sent_once_more() {
    let upstream = ScriptedUpstream::start(vec![vec![Some(OK), None], vec![Some(OK)]]).await;
    let gateway = spawn(one_thread(&upstream.url));
    assert_eq!(gateway.get("/first").await.status(), 200);
    let second = gateway.get("/second").await;
    assert_eq!(second.status(), 200, "retried on a new connection");
    assert_eq!(second.text().await.expect("body"), "ok");
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
    assert_eq!(
        upstream.requests(),
        [
            "GET /first HTTP/1.1",
            "GET /second HTTP/1.1",
            "GET /second HTTP/1.1"
        ]
    );
    gateway.server.stop().await;
}

#[tokio::test]
async fn a_post_on_a_connection_the_upstream_dropped_is_not_sent_again() {
    let upstream = ScriptedUpstream::start(vec![vec![Some(OK), None], vec![Some(OK)]]).await;
    let gateway = spawn(one_thread(&upstream.url));
    assert_eq!(gateway.get("/first").await.status(), 200);
    let response = gateway
        .client
        .post(gateway.url("/order"))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 502);
    assert_eq!(error_code(response).await, "upstream_unavailable");
    assert_eq!(
        upstream.requests(),
        ["GET /first HTTP/1.1", "POST /order HTTP/1.1"],
        "a request that may have been processed is never repeated"
    );
    gateway.server.stop().await;
}

#[tokio::test]
async fn chunked_and_close_delimited_responses_reach_the_client_chunked() {
    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n";
    const UNTIL_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end";
    let upstream =
        ScriptedUpstream::start(vec![vec![Some(CHUNKED), Some(CHUNKED), Some(UNTIL_CLOSE)]]).await;
    let gateway = spawn(one_thread(&upstream.url));
    let request = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let text = exchange_raw(&gateway.authority, request).await;
    let chunked_body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n";
    assert_eq!(
        text.matches(chunked_body).count(),
        2,
        "chunks and trailers pass as sent: {text}"
    );
    let responses: Vec<&str> = text.split("HTTP/1.1 200 OK\r\n").skip(1).collect();
    assert_eq!(responses.len(), 3, "{text}");
    for chunked in &responses[..2] {
        let head = chunked
            .split("\r\n\r\n")
            .next()
            .expect("head")
            .to_lowercase();
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        assert!(
            !head.contains("content-length"),
            "Content-Length beside Transfer-Encoding is dropped: {head}"
        );
    }
    // The body that ended with the upstream's connection goes out chunked: the client sees
    // where it ends (and would see it cut short), and its connection could stay open.
    let last = responses[2].to_lowercase();
    assert!(last.contains("transfer-encoding: chunked"), "{last}");
    assert!(
        last.ends_with("\r\n\r\nd\r\nuntil the end\r\n0\r\n\r\n"),
        "{last}"
    );
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
    gateway.server.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_a_chunked_upload_among_them_goes_to_hyper() {
    let upstream = upstream::start("u").await;
    let gateway = spawn(config(vec![route("/", &[&upstream.url])]));
    let request = concat!(
        "GET /first HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        "POST /third HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "GET /fourth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let text = exchange_raw(&gateway.authority, request.as_bytes()).await;
    let bodies: Vec<Value> = text
        .split("HTTP/1.1 200 OK\r\n")
        .skip(1)
        .map(|response| {
            let json = &response[response.find('{').expect("a JSON body")..];
            let end = json.rfind('}').expect("JSON end");
            serde_json::from_str(&json[..=end]).expect("JSON")
        })
        .collect();
    let paths: Vec<&str> = bodies
        .iter()
        .map(|body| body["path"].as_str().expect("path"))
        .collect();
    assert_eq!(paths, ["/first", "/second", "/third", "/fourth"], "{text}");
    assert_eq!(bodies[1]["body_len"], 3);
    assert_eq!(bodies[2]["body_len"], 5, "the chunked upload arrived whole");
    gateway.server.stop().await;
}

#[tokio::test]
async fn a_response_that_is_not_http_is_a_502() {
    let upstream = ScriptedUpstream::start(vec![vec![Some(b"SMTP ready\r\n\r\n")]]).await;
    let gateway = spawn(one_thread(&upstream.url));
    let response = gateway.get("/x").await;
    assert_eq!(response.status(), 502);
    assert_eq!(error_code(response).await, "upstream_unavailable");
    gateway.server.stop().await;
}

#[tokio::test]
async fn fields_named_in_connection_never_change_a_message_framing() {
    // A request naming Content-Length in Connection: were the length dropped, the upstream
    // would read the body as a second request (to a path the gateway never routed).
    let upstream = upstream::start("u").await;
    let gateway = spawn(config(vec![route("/", &[&upstream.url])]));
    let smuggled = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    let request = format!(
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nConnection: content-length\r\n\r\n{smuggled}GET /y HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        smuggled.len()
    );
    let text = exchange_raw(&gateway.authority, request.as_bytes()).await;
    assert!(
        !text.contains("/admin\""),
        "the upstream saw a smuggled request: {text}"
    );
    assert!(
        text.contains(&format!("\"body_len\":{}", smuggled.len())),
        "{text}"
    );
    assert!(text.contains("\"path\":\"/y\""), "{text}");

    // A response naming Content-Length in Connection, with no reason phrase, one with a
    // reason that is not text, and one without a Date.
    const NO_REASON: &[u8] =
        b"HTTP/1.1 200\r\nConnection: content-length\r\nContent-Length: 2\r\nDate: Sat, 28 Nov 2026 10:00:00 GMT\r\n\r\nok";
    const ODD_REASON: &[u8] = b"HTTP/1.1 202 \xC3\x87a va\r\nContent-Length: 0\r\n\r\n";
    let scripted = ScriptedUpstream::start(vec![vec![Some(NO_REASON), Some(ODD_REASON)]]).await;
    let gateway = spawn(one_thread(&scripted.url));
    let text = exchange_raw(
        &gateway.authority,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (first, second) = text.split_once("HTTP/1.1 202").expect("two responses");
    let first_head = first.to_lowercase();
    assert!(first_head.starts_with("http/1.1 200 \r\n"), "{first}");
    assert!(first_head.contains("content-length: 2\r\n"), "{first}");
    assert!(first.ends_with("\r\n\r\nok"), "{first}");
    assert!(
        first_head.contains("date: sat, 28 nov 2026 10:00:00 gmt"),
        "{first}"
    );
    assert!(
        second.to_lowercase().contains("\r\ndate: "),
        "a Date is added: {second}"
    );
}

#[tokio::test]
async fn a_status_below_100_is_a_502() {
    let upstream = ScriptedUpstream::start(vec![vec![Some(b"HTTP/1.1 099 Odd\r\n\r\n")]]).await;
    let gateway = spawn(one_thread(&upstream.url));
    let response = gateway.get("/x").await;
    assert_eq!(response.status(), 502);
    gateway.server.stop().await;
}

#[tokio::test]
async fn uploads_below_and_above_the_direct_path_limit_arrive_whole() {
    let upstream = upstream::start("u").await;
    let gateway = spawn(config(vec![route("/", &[&upstream.url])]));
    for size in [40_000, 100_000] {
        let response = gateway
            .client
            .post(gateway.url("/echo"))
            .body(vec![7_u8; size])
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["body_len"], size);
    }
    gateway.server.stop().await;
}
