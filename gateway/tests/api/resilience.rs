//! Failures and limits: dead and hung upstreams, body, header and rate limits, balancing and
//! ejection, and the graceful drain.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use gateway::config::RateLimitConfig;
use serde_json::Value;
use testing::error_code;

use crate::{
    helpers::{config, raw, route, spawn},
    upstream,
};

/// An upstream address that refuses every connection: a socket bound to it and never
/// listening. Held for as long as the test needs the address refused, so no other test in
/// this binary can be given its port.
struct DeadUpstream {
    /// `http://127.0.0.1:<port>`.
    url: String,
    /// Holds the port.
    _socket: tokio::net::TcpSocket,
}

fn dead_upstream() -> DeadUpstream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind((std::net::Ipv4Addr::LOCALHOST, 0).into())
        .expect("bind");
    let port = socket.local_addr().expect("address").port();
    DeadUpstream {
        url: format!("http://127.0.0.1:{port}"),
        _socket: socket,
    }
}

#[tokio::test]
async fn a_dead_upstream_is_a_quick_502() {
    let dead = dead_upstream();
    let mut settings = config(vec![route("/", &[&dead.url])]);
    // A refused connect is answered long before either timeout could be what ended it.
    settings.server.connect_timeout_ms = 3_000;
    settings.server.response_timeout_ms = 3_000;
    let gateway = spawn(settings);
    let mut timings = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let response = gateway.get("/x").await;
        timings.push(started.elapsed());
        assert_eq!(response.status(), 502);
        assert_eq!(error_code(response).await, "upstream_unavailable");
    }
    // The median of three, so one scheduling hiccup of a loaded test machine does not decide;
    // a third of the timeouts leaves a loaded machine room and still tells "refused at once"
    // from "given up on".
    timings.sort();
    assert!(
        timings[1] < Duration::from_millis(1_000),
        "502 took {timings:?}"
    );
    assert!(
        gateway
            .metric("gateway_upstream_errors_total", &[("kind", "connect")])
            .await
            >= 3.0
    );
    // One route's instances down is that route's 502s: the gateway stays ready, and says which
    // route is degraded once its instance is ejected.
    let ready = gateway.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.expect("JSON");
    assert_eq!(body["degraded"], serde_json::json!(["/"]));
    gateway.server.stop().await;
}

#[tokio::test]
async fn a_hung_upstream_is_a_504_at_the_route_timeout() {
    let upstream = upstream::start("u").await;
    let mut hung = route("/", &[&upstream.url]);
    hung.response_timeout_ms = Some(300);
    let gateway = spawn(config(vec![hung]));
    let started = Instant::now();
    let response = gateway.get("/hang").await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 504);
    assert_eq!(error_code(response).await, "upstream_timeout");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "504 after {elapsed:?}"
    );
    assert_eq!(
        gateway.get("/slow?ms=10").await.status(),
        200,
        "a quick answer is still served"
    );
    gateway.server.stop().await;
}

#[tokio::test]
async fn bodies_over_the_route_limit_are_413() {
    let upstream = upstream::start("u").await;
    let mut limited = route("/", &[&upstream.url]);
    limited.max_body_bytes = Some(1024);
    let gateway = spawn(config(vec![limited]));
    let declared = gateway
        .client
        .post(gateway.url("/upload"))
        .body(vec![0_u8; 2048])
        .send()
        .await
        .expect("POST");
    assert_eq!(declared.status(), 413);
    assert_eq!(error_code(declared).await, "payload_too_large");

    let chunks = futures_util::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![1_u8; 512]))),
    );
    let chunked = gateway
        .client
        .post(gateway.url("/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    assert_eq!(
        chunked.expect("an answer").status(),
        413,
        "a chunked body over the limit is cut"
    );
    let small: Value = gateway
        .client
        .post(gateway.url("/upload"))
        .body(vec![0_u8; 1000])
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(small["received"], 1000);
    gateway.server.stop().await;
}

#[tokio::test]
async fn huge_headers_are_431() {
    let upstream = upstream::start("u").await;
    let gateway = spawn(config(vec![route("/", &[&upstream.url])]));
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let (head, body) = raw(&gateway.authority, &request).await;
    assert!(head.starts_with("http/1.1 431"), "{head}");
    let error: Value = serde_json::from_str(&body).expect("a JSON error body");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("16384")),
        "{error}"
    );
    let enormous = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let (head, _) = raw(&gateway.authority, &enormous).await;
    assert!(
        head.starts_with("http/1.1 431"),
        "hyper itself refuses a head past twice the limit: {head}"
    );
    assert_eq!(
        gateway.get("/healthz").await.status(),
        200,
        "the gateway is fine afterwards"
    );
    gateway.server.stop().await;
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let upstream = upstream::start("u").await;
    let mut limited = config(vec![route("/", &[&upstream.url])]);
    limited.rate_limit = Some(RateLimitConfig {
        per_second: 1,
        burst: 3,
    });
    let gateway = spawn(limited);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let response = gateway.get("/x").await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().expect("ascii").to_owned());
            assert_eq!(error_code(response).await, "rate_limited");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert!(
        retry_after
            .expect("Retry-After")
            .parse::<u64>()
            .expect("seconds")
            >= 1
    );
    gateway.server.stop().await;
}

#[tokio::test]
async fn round_robin_and_a_dead_instance_is_ejected_without_failing_clients() {
    let first = upstream::start("first").await;
    let second = upstream::start("second").await;
    let gateway = spawn(config(vec![route("/", &[&first.url, &second.url])]));
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..20 {
        let echo: Value = gateway.get("/x").await.json().await.expect("echo");
        *counts
            .entry(echo["instance"].as_str().expect("instance").to_owned())
            .or_default() += 1;
    }
    assert_eq!(counts.get("first"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("second"), Some(&10), "{counts:?}");

    let live = upstream::start("live").await;
    let dead = dead_upstream();
    let gateway_with_dead = spawn(config(vec![route("/", &[&dead.url, &live.url])]));
    for _ in 0..20 {
        let response = gateway_with_dead.get("/x").await;
        assert_eq!(
            response.status(),
            200,
            "a dead instance never fails a client request"
        );
    }
    assert!(
        gateway_with_dead
            .metric("gateway_ejections_total", &[])
            .await
            >= 1.0
    );
    assert_eq!(
        gateway_with_dead
            .metric("gateway_ejected_instances", &[("route", "/")])
            .await,
        1.0
    );
    gateway.server.stop().await;
    gateway_with_dead.server.stop().await;
}

#[tokio::test]
async fn a_slow_request_in_flight_finishes_during_the_drain() {
    let upstream = upstream::start("u").await;
    let gateway = spawn(config(vec![route("/", &[&upstream.url])]));
    let client = gateway.client.clone();
    let url = gateway.url("/slow?ms=600");
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    // Shut down only once the request is in flight: it has reached the upstream.
    while upstream
        .slow_arrived
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        tokio::task::yield_now().await;
    }
    let address = gateway.url("/healthz");
    let stopped = Instant::now();
    gateway.server.stop().await;
    let response = in_flight
        .await
        .expect("task")
        .expect("the in-flight request completed");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "done");
    assert!(stopped.elapsed() < Duration::from_secs(5));
    assert!(
        reqwest::get(address).await.is_err(),
        "nothing is accepted after the drain"
    );
}

#[tokio::test]
async fn the_response_timeout_starts_after_a_slow_upload() {
    let upstream = upstream::start("u").await;
    let mut quick = route("/", &[&upstream.url]);
    quick.response_timeout_ms = Some(300);
    let gateway = spawn(config(vec![quick]));
    // A client that needs a second to send its body: longer than the response timeout.
    let chunks = futures_util::stream::iter(0..10).then(|_| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![7_u8; 1024]))
    });
    let response = gateway
        .client
        .post(gateway.url("/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        response.status(),
        200,
        "the upload was not cut by the response timeout"
    );
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["received"], 10 * 1024);
    gateway.server.stop().await;
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let upstream = upstream::start("u").await;
    let gateway = spawn(config(vec![route("/", &[&upstream.url])]));
    for _ in 0..20 {
        assert_eq!(gateway.get("/x").await.status(), 200);
    }
    for _ in 0..20 {
        let response = gateway
            .client
            .delete(gateway.url("/empty"))
            .send()
            .await
            .expect("DELETE");
        assert_eq!(response.status(), 204);
    }
    for _ in 0..5 {
        let response = gateway
            .client
            .head(gateway.url("/x"))
            .send()
            .await
            .expect("HEAD");
        assert_eq!(response.status(), 200);
    }
    let opened = upstream
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        opened <= 2,
        "45 sequential requests opened {opened} upstream connections"
    );
    gateway.server.stop().await;
}

#[tokio::test]
async fn active_health_checks_eject_a_dead_instance_before_any_request() {
    let live = upstream::start("live").await;
    let dead = dead_upstream();
    let mut checked = config(vec![route("/", &[&dead.url, &live.url])]);
    checked.server.health_check_interval_ms = 50;
    let gateway = spawn(checked);
    let mut ejected = 0.0;
    for _ in 0..100 {
        ejected = gateway
            .metric("gateway_ejected_instances", &[("route", "/")])
            .await;
        if ejected == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        ejected, 1.0,
        "the dead instance left the rotation on its own"
    );
    assert_eq!(
        gateway
            .metric("gateway_upstream_errors_total", &[("kind", "connect")])
            .await,
        0.0,
        "no client request met it"
    );
    for _ in 0..10 {
        let echo: Value = gateway.get("/x").await.json().await.expect("echo");
        assert_eq!(echo["instance"], "live");
    }
    assert_eq!(
        gateway
            .metric("gateway_ejected_instances", &[("route", "/")])
            .await,
        1.0,
        "the live one stays in"
    );
    gateway.server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = upstream::start("u").await;
    let mut slow = config(vec![route("/", &[&upstream.url])]);
    slow.server.client_header_timeout_ms = 300;
    let gateway = spawn(slow);
    let mut stream = tokio::net::TcpStream::connect(&gateway.authority)
        .await
        .expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("half a head");
    let started = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the gateway closed the connection");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    assert_eq!(gateway.get("/healthz").await.status(), 200);
    gateway.server.stop().await;
}
