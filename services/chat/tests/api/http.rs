//! The plain HTTP side: the page, health, readiness and metrics.

use testing::{TestBackend, fresh_database};

use crate::helpers::{eventually, spawn_app, spawn_with, test_chat_settings, test_settings};

#[tokio::test]
async fn the_page_is_served_from_the_binary_and_escapes_what_it_shows() {
    let app = spawn_app(TestBackend::Sqlite).await;
    for path in ["/chat", "/chat/"] {
        let response = app.service.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/html; charset=utf-8")
        );
        let page = response.text().await.expect("the page");
        // Plain WebSocket on the page's own origin (works through the gateway), no socket.io.
        assert!(page.contains("new WebSocket("), "a plain WebSocket");
        assert!(page.contains("location.host + '/chat/ws?'"));
        assert!(!page.contains("socket.io"));
        // The seed's colours, and text only ever set as text.
        for colour in ["'blue'", "'green'", "'red'"] {
            assert!(page.contains(colour), "{colour}");
        }
        assert!(page.contains("textContent"));
        assert!(!page.contains("innerHTML"), "no HTML from strings");
        assert!(page.contains("setTimeout(connect"), "reconnects");
        // The optional sign-in: the login API, the token in the subprotocol list and never
        // in the URL, kept in the tab only.
        assert!(page.contains("'/api/auth/login'"));
        assert!(page.contains("new WebSocket(socketUrl(), ['bearer', token])"));
        assert!(!page.contains("access_token="));
        assert!(!page.contains("localStorage"));
    }
    let response = app
        .service
        .client
        .post(app.service.url("/chat"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn health_readiness_and_chat_metrics() {
    let app = spawn_app(TestBackend::Sqlite).await;
    assert_eq!(app.service.get("/healthz").await.status(), 200);
    let ready = app.service.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("JSON");
    assert_eq!(body["checks"]["pubsub"], "ok", "{body}");
    assert_eq!(body["checks"]["database"], "ok", "{body}");

    let (mut alice, _) = app.join("general", "alice").await;
    alice.say("counted").await;
    alice.expect("chatMessage").await;
    alice.say("").await;
    alice.expect_error("validation_failed").await;
    assert_eq!(app.metric("chat_open_connections", &[]).await, 1.0);
    assert_eq!(app.metric("chat_connections_total", &[]).await, 1.0);
    assert_eq!(app.metric("chat_messages_total", &[]).await, 1.0);
    assert_eq!(app.metric("chat_rooms", &[]).await, 1.0);
    let text = app
        .service
        .get("/metrics")
        .await
        .text()
        .await
        .expect("metrics");
    let families = testing::assert_distinct_metric_families(&text);
    assert!(families.contains(&"chat_open_connections".to_owned()));
    assert_eq!(
        app.metric("chat_client_errors_total", &[("code", "validation_failed")])
            .await,
        1.0
    );
    alice.close().await;
    eventually("the disconnect is counted", || async {
        app.metric("chat_disconnects_total", &[("reason", "client")])
            .await
            == 1.0
    })
    .await;
    assert_eq!(app.metric("chat_open_connections", &[]).await, 0.0);
}

#[tokio::test]
async fn readiness_names_pubsub_when_redis_is_unreachable() {
    let mut settings = test_settings(
        fresh_database(TestBackend::Sqlite)
            .await
            .expect("a database"),
    );
    // Nothing listens on port 1.
    settings.cache.redis_url = Some("redis://127.0.0.1:1".to_owned());
    let app = spawn_with(settings, test_chat_settings()).await;
    let response = app.service.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "unavailable");
    let failing: Vec<&str> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert!(failing.contains(&"pubsub"), "{body}");
    assert_eq!(app.service.get("/healthz").await.status(), 200);
}

/// actix-http is patched to start connections with 1 KiB buffers (vendor/README.md): heads
/// larger than that, pipelined requests and a response larger than the write buffer still go
/// through whole.
#[tokio::test]
async fn the_patched_http_buffers_take_large_heads_pipelining_and_large_responses() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app(TestBackend::Sqlite).await;
    for header_bytes in [2 * 1024, 7 * 1024] {
        let response = app
            .service
            .client
            .get(app.service.url("/chat/rooms"))
            .header("x-padding", "p".repeat(header_bytes))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 200, "a {header_bytes}-byte header");
    }
    let address = app.service.address.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let padding = "p".repeat(1500);
    let requests = format!(
        "GET /chat/rooms HTTP/1.1\r\nHost: x\r\nX-Padding: {padding}\r\n\r\n\
         GET /chat HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /chat/rooms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(requests.as_bytes()).await.expect("write");
    let mut answers = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        socket.read_to_end(&mut answers),
    )
    .await
    .expect("answers in time")
    .expect("read");
    let answers = String::from_utf8(answers).expect("UTF-8");
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 3, "{answers}");
    assert!(
        answers.contains(chat_service::routes::PAGE),
        "the whole page"
    );
    assert!(answers.ends_with("[]"), "{answers}");
}
