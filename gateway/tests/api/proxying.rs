//! Routing, headers, request ids, WebSockets and streaming through the gateway.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use testing::error_code;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    helpers::{config, raw, reserved_port, route, spawn},
    upstream,
};

#[tokio::test]
async fn routes_by_longest_prefix_on_segments_and_keeps_the_query() {
    let users = upstream::start("users").await;
    let api = upstream::start("api").await;
    let rewritten = upstream::start("rewritten").await;
    let mut versioned = route("/v1", &[&rewritten.url]);
    versioned.rewrite = Some("/internal".into());
    let gateway = spawn(config(vec![
        route("/api", &[&api.url]),
        route("/api/users", &[&users.url]),
        versioned,
    ]));

    let echo = |path: &'static str| {
        let gateway = &gateway;
        async move {
            gateway
                .get(path)
                .await
                .json::<Value>()
                .await
                .expect("an echo")
        }
    };
    let users_echo = echo("/api/users/7?fields=name&x=1").await;
    assert_eq!(users_echo["instance"], "users");
    assert_eq!(
        users_echo["path"], "/api/users/7",
        "the path is forwarded unchanged"
    );
    assert_eq!(users_echo["query"], "fields=name&x=1");
    assert_eq!(echo("/api/users").await["instance"], "users");
    assert_eq!(
        echo("/api/usersX").await["instance"],
        "api",
        "/api/usersX is not below /api/users"
    );
    assert_eq!(echo("/api/products/1").await["instance"], "api");
    let rewritten_echo = echo("/v1/things?a=b").await;
    assert_eq!(
        (
            rewritten_echo["path"].as_str(),
            rewritten_echo["query"].as_str()
        ),
        (Some("/internal/things"), Some("a=b"))
    );

    let unknown = gateway.get("/elsewhere").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(error_code(unknown).await, "not_found");
    let root = gateway.get("/").await;
    assert_eq!(root.text().await.expect("text"), "API Gateway");
    assert_eq!(gateway.get("/healthz").await.status(), 200);
    gateway.server.stop().await;
}

#[tokio::test]
async fn hop_by_hop_headers_stay_on_their_hop_both_ways() {
    let upstream = upstream::start("u").await;
    let gateway = spawn(config(vec![route("/", &[&upstream.url])]));
    let request = "GET /echo HTTP/1.1\r\nHost: public.example\r\nConnection: close, X-Hop-Secret\r\n\
                   X-Hop-Secret: 1\r\nKeep-Alive: timeout=9\r\nProxy-Authorization: Basic eA==\r\nTE: gzip\r\n\
                   X-Custom: kept\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 198.51.100.2\r\n\r\n";
    let (head, body) = raw(&gateway.authority, request).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        !head.contains("x-upstream-hop"),
        "a header the upstream's Connection names is dropped: {head}"
    );
    assert!(!head.contains("keep-alive: timeout"), "{head}");
    let echo: Value = serde_json::from_str(&body).expect("echo JSON");
    let headers = &echo["headers"];
    for hop in [
        "x-hop-secret",
        "keep-alive",
        "proxy-authorization",
        "te",
        "connection",
    ] {
        assert!(
            headers[hop].is_null(),
            "{hop} reached the upstream: {headers}"
        );
    }
    assert_eq!(headers["x-custom"][0], "kept");
    assert_eq!(
        headers["host"][0], "public.example",
        "Host as the client sent it"
    );
    assert_eq!(
        headers["x-forwarded-for"],
        serde_json::json!(["127.0.0.1"]),
        "one X-Forwarded-For, the peer's: what the client wrote is not vouched for"
    );
    assert_eq!(headers["x-forwarded-proto"][0], "http");
    assert_eq!(headers["x-forwarded-host"][0], "public.example");
    gateway.server.stop().await;
}

#[tokio::test]
async fn a_route_may_set_the_host() {
    let upstream = upstream::start("u").await;
    let mut with_host = route("/", &[&upstream.url]);
    with_host.host = Some("internal.svc".into());
    let gateway = spawn(config(vec![with_host]));
    let echo: Value = gateway.get("/x").await.json().await.expect("echo");
    assert_eq!(echo["headers"]["host"][0], "internal.svc");
    gateway.server.stop().await;
}

#[tokio::test]
async fn request_ids_go_upstream_and_come_back() {
    let upstream = upstream::start("u").await;
    let gateway = spawn(config(vec![route("/", &[&upstream.url])]));
    let kept = gateway
        .client
        .get(gateway.url("/a"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .expect("GET");
    assert_eq!(kept.headers()["x-request-id"], "trace-42");
    let echo: Value = kept.json().await.expect("echo");
    assert_eq!(echo["headers"]["x-request-id"][0], "trace-42");

    let generated = gateway
        .client
        .get(gateway.url("/a"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .expect("GET");
    let returned = generated.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(returned.len(), 36);
    let echo: Value = generated.json().await.expect("echo");
    assert_eq!(
        echo["headers"]["x-request-id"][0],
        returned.as_str(),
        "the upstream saw the id the client got"
    );
    gateway.server.stop().await;
}

#[tokio::test]
async fn websockets_pass_through() {
    let upstream = upstream::start("u").await;
    let gateway = spawn(config(vec![
        route("/chat", &[&upstream.url]),
        route("/ws", &[&upstream.url]),
    ]));
    let (mut socket, response) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws", gateway.authority))
            .await
            .expect("a WebSocket through the gateway");
    assert_eq!(response.status(), 101);
    for text in ["hello", "second frame", &"x".repeat(100_000)] {
        socket.send(Message::text(text)).await.expect("send");
        let echoed = socket.next().await.expect("a frame").expect("a message");
        assert_eq!(echoed.into_text().expect("text").as_str(), text);
    }
    socket.close(None).await.expect("close");
    while socket.next().await.is_some() {}
    drop(socket);
    // The tunnel is gone with the socket, so the drain does not wait for it.
    let stopped = std::time::Instant::now();
    gateway.server.stop().await;
    assert!(stopped.elapsed() < std::time::Duration::from_secs(5));
}

fn peak_rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches(" kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .expect("VmHWM")
        / 1024
}

/// The gateway binary in a process of its own, so its memory is its own.
#[tokio::test]
async fn hundred_mebibytes_stream_both_ways_in_bounded_memory() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let upstream = upstream::start("u").await;
    let dir = std::env::temp_dir().join(format!(
        "platform-gateway-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[[routes]]\nprefix = \"/\"\nupstreams = [\"{}\"]\n",
            upstream.url
        ),
    )
    .expect("config");
    // Held while the binary runs: no other test is given the port.
    let (_reserved, port) = reserved_port();
    let mut gateway = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env("PORT", port.to_string())
        .env("GATEWAY_CONFIG", &config)
        .env("LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the gateway binary");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(up, "the gateway answers");
    let before = peak_rss_mib(gateway.id());

    let chunk = bytes::Bytes::from(vec![b'y'; 256 * 1024]);
    let chunks = futures_util::stream::iter(
        (0..SIZE / chunk.len() as u64).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    let uploaded: Value = client
        .post(format!("{base}/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("JSON");
    assert_eq!(uploaded["received"], SIZE);

    let download = client
        .get(format!("{base}/download?bytes={SIZE}"))
        .send()
        .await
        .expect("download");
    assert_eq!(download.status(), 200);
    let mut received = 0_u64;
    let mut stream = download.bytes_stream();
    while let Some(chunk) = stream.next().await {
        received += chunk.expect("a chunk").len() as u64;
    }
    assert_eq!(received, SIZE);
    let peak = peak_rss_mib(gateway.id());
    assert!(
        peak < before + 32,
        "the gateway's peak memory went from {before} MiB to {peak} MiB for 200 MiB"
    );

    std::process::Command::new("kill")
        .args(["-TERM", &gateway.id().to_string()])
        .status()
        .expect("kill");
    assert_eq!(
        gateway.wait().expect("wait").code(),
        Some(0),
        "SIGTERM is a clean exit"
    );
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[test]
fn the_example_config_in_deploy_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/gateway.toml");
    let config =
        gateway::config::GatewayConfig::from_file(&path).expect("deploy/gateway.toml is valid");
    assert!(
        config.rate_limit.is_some(),
        "the example turns the rate limit on"
    );
    let table = |config: gateway::config::GatewayConfig| -> Vec<_> {
        config
            .routes
            .into_iter()
            .map(|route| (route.prefix, route.sticky, route.openapi))
            .collect()
    };
    let builtin = table(gateway::config::GatewayConfig::builtin());
    assert!(
        builtin.contains(&(
            "/socket.io".to_owned(),
            Some(gateway::config::Sticky::EngineIo),
            None
        )),
        "Socket.IO is sticky: {builtin:?}"
    );
    assert_eq!(
        table(config),
        builtin,
        "the example has the built-in routes, sticky and documented alike"
    );
    let k8s = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s/gateway.toml");
    let k8s = gateway::config::GatewayConfig::from_file(&k8s).expect("deploy/k8s/gateway.toml");
    assert_eq!(
        table(k8s),
        builtin,
        "the deployments' table has the built-in routes, sticky and documented alike"
    );
}

#[tokio::test]
async fn one_access_line_per_request_with_route_upstream_and_bytes() {
    let upstream = upstream::start("u").await;
    let (logger, logs) = testing::capturing_logger("gateway");
    let gateway =
        crate::helpers::spawn_logging_to(config(vec![route("/api", &[&upstream.url])]), logger);
    let response = gateway
        .client
        .get(gateway.url("/api/things?secret=1"))
        .header("x-request-id", "log-check-1")
        .header("user-agent", "log-test")
        .send()
        .await
        .expect("GET");
    let body = response.bytes().await.expect("body");
    gateway.get("/nowhere").await;
    let requests = |route: &'static str, status: &'static str| {
        let server = &gateway.server;
        async move {
            server
                .metric(
                    "http_requests_total",
                    &[("route", route), ("status", status), ("service", "gateway")],
                )
                .await
        }
    };
    assert_eq!(requests("/api", "200").await, 1.0);
    assert_eq!(requests("-", "404").await, 1.0);
    assert_eq!(
        gateway
            .metric("http_request_duration_seconds_count", &[("route", "/api")])
            .await,
        1.0
    );
    assert!(
        gateway.metric("gateway_open_connections", &[]).await >= 1.0,
        "the scrape's own connection is open"
    );
    gateway.server.stop().await;

    let text = String::from_utf8(logs.lock().expect("logs").clone()).expect("utf-8");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON lines"))
        .collect();
    let access: Vec<&Value> = lines
        .iter()
        .filter(|line| line["msg"] == "request")
        .collect();
    let scrapes = access
        .iter()
        .filter(|line| line["path"] == "/metrics")
        .count();
    assert_eq!(
        (access.len(), scrapes),
        (6, 4),
        "one line per request, the four scrapes included: {text}"
    );
    let line = access
        .iter()
        .find(|line| line["request_id"] == "log-check-1")
        .expect("the proxied request's line");
    assert_eq!(line["route"], "/api");
    assert_eq!(line["upstream"], upstream.url.trim_start_matches("http://"));
    assert_eq!(line["bytes"], body.len());
    assert_eq!(line["status"], 200);
    assert_eq!(
        line["path"], "/api/things",
        "the query stays out of the log"
    );
    assert_eq!(
        (line["method"].as_str(), line["user_agent"].as_str()),
        (Some("GET"), Some("log-test"))
    );
    for field in ["ts", "level", "service", "version", "duration_ms", "ip"] {
        assert!(!line[field].is_null(), "{field} in {line}");
    }
    let unrouted = access
        .iter()
        .find(|line| line["path"] == "/nowhere")
        .expect("the 404's line");
    assert_eq!(
        (unrouted["status"].as_u64(), unrouted["route"].as_str()),
        (Some(404), Some("-"))
    );
}
