//! The W3C trace context follows a request to users-service: graphql-service's access line
//! names the caller's trace and a span of its own, each upstream call carries a `traceparent`
//! of that trace (a span of the call's own) and the `tracestate`, and the lines logged about
//! a failed call name the trace.

use std::time::Duration;

use serde_json::{Value, json};
use testing::{TestBackend, TestService, capturing_logger, eventually, free_port, fresh_database};

use crate::helpers::{graphql_settings, spawn_graphql_logging_to};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The JSON lines logged so far.
fn lines(log: &std::sync::Mutex<Vec<u8>>) -> Vec<Value> {
    String::from_utf8_lossy(&log.lock().expect("log"))
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The access line of the request to `path`, once it is written.
async fn access_line(log: &std::sync::Arc<std::sync::Mutex<Vec<u8>>>, path: &str) -> Value {
    let find = || {
        lines(log)
            .into_iter()
            .find(|line| line["msg"] == "request" && line["path"] == path)
    };
    eventually(
        &format!("the access line of {path}"),
        Duration::from_secs(5),
        || {
            let found = find().is_some();
            async move { found }
        },
    )
    .await;
    find().expect("found above")
}

#[tokio::test]
async fn the_callers_trace_reaches_users_service_through_graphql() {
    let (users_logger, users_log) = capturing_logger(users_service::NAME);
    let users = TestService::start(
        testing::service_settings(
            users_service::NAME,
            users_service::DEFAULT_PORT,
            fresh_database(TestBackend::Sqlite).await.expect("database"),
        ),
        users_logger,
        crate::helpers::build_users,
    )
    .await;
    let (graphql_logger, graphql_log) = capturing_logger(graphql_service::NAME);
    let graphql = spawn_graphql_logging_to(
        graphql_settings(
            fresh_database(TestBackend::Sqlite).await.expect("database"),
            &users.url(""),
            &format!("http://127.0.0.1:{}", free_port()),
        ),
        graphql_logger,
    )
    .await;

    let response = graphql
        .client
        .post(graphql.url("/graphql"))
        .header("traceparent", TRACEPARENT)
        .header("tracestate", "congo=t61rcWkgMzE")
        .json(&json!({"query": "{ users { id } }"}))
        .send()
        .await
        .expect("POST /graphql");
    assert_eq!(response.status(), 200);

    let served = access_line(&graphql_log, "/graphql").await;
    assert_eq!(served["trace_id"], TRACE_ID, "{served}");
    let graphql_span = served["span_id"].as_str().expect("a span id").to_owned();
    assert_eq!(graphql_span.len(), 16, "{served}");
    assert_ne!(
        graphql_span, CLIENT_SPAN,
        "a span of graphql's own: {served}"
    );

    let called = access_line(&users_log, "/api/users").await;
    assert_eq!(called["trace_id"], TRACE_ID, "the same trace: {called}");
    let users_span = called["span_id"].as_str().expect("a span id");
    assert!(
        users_span != graphql_span && users_span != CLIENT_SPAN,
        "a span of users-service's own: {called}"
    );

    // Without a traceparent, graphql starts a trace, and users-service continues that one.
    let response = graphql
        .client
        .post(graphql.url("/graphql?second"))
        .json(&json!({"query": "{ users { id } }"}))
        .send()
        .await
        .expect("POST /graphql");
    assert_eq!(response.status(), 200);
    eventually("two access lines each", Duration::from_secs(5), || {
        let counts = (
            lines(&graphql_log)
                .iter()
                .filter(|line| line["msg"] == "request")
                .count(),
            lines(&users_log)
                .iter()
                .filter(|line| line["msg"] == "request")
                .count(),
        );
        async move { counts == (2, 2) }
    })
    .await;
    let started = lines(&graphql_log)
        .into_iter()
        .filter(|line| line["msg"] == "request")
        .nth(1)
        .expect("the second access line");
    let continued = lines(&users_log)
        .into_iter()
        .filter(|line| line["msg"] == "request")
        .nth(1)
        .expect("the second access line");
    assert_ne!(started["trace_id"], TRACE_ID);
    assert_eq!(
        started["trace_id"], continued["trace_id"],
        "{started} {continued}"
    );
}

/// A users-service stand-in that keeps each request head and answers 500.
async fn recording_users_service() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut connection, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut request = vec![0_u8; 8192];
                let read = connection.read(&mut request).await.unwrap_or(0);
                kept.lock()
                    .expect("heads")
                    .push(String::from_utf8_lossy(&request[..read]).into_owned());
                let answer = "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\
                              connection: close\r\n\r\n";
                let _ = connection.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, heads)
}

#[tokio::test]
async fn each_call_carries_a_span_of_its_own_and_its_failure_names_the_trace() {
    let (users_url, heads) = recording_users_service().await;
    let (graphql_logger, graphql_log) = capturing_logger(graphql_service::NAME);
    let graphql = spawn_graphql_logging_to(
        graphql_settings(
            fresh_database(TestBackend::Sqlite).await.expect("database"),
            &users_url,
            &format!("http://127.0.0.1:{}", free_port()),
        ),
        graphql_logger,
    )
    .await;
    let response = graphql
        .client
        .post(graphql.url("/graphql"))
        .header("traceparent", TRACEPARENT)
        .header("tracestate", "congo=t61rcWkgMzE")
        .json(&json!({"query": "{ users { id } }"}))
        .send()
        .await
        .expect("POST /graphql");
    assert_eq!(response.status(), 200);

    let served = access_line(&graphql_log, "/graphql").await;
    let graphql_span = served["span_id"].as_str().expect("a span id").to_owned();
    let heads = heads.lock().expect("heads").clone();
    assert!(!heads.is_empty(), "users-service was called");
    for head in &heads {
        let field = |name: &str| {
            head.lines().find_map(|line| {
                let (field, value) = line.split_once(':')?;
                field
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
        };
        let traceparent = field("traceparent").expect("a traceparent");
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "{traceparent}");
        assert_eq!(
            (parts[0], parts[1], parts[3]),
            ("00", TRACE_ID, "01"),
            "{traceparent}"
        );
        assert!(
            parts[2] != graphql_span && parts[2] != CLIENT_SPAN && parts[2].len() == 16,
            "the call's own span: {traceparent}"
        );
        assert_eq!(field("tracestate").as_deref(), Some("congo=t61rcWkgMzE"));
    }
    let failed = lines(&graphql_log)
        .into_iter()
        .find(|line| line["msg"] == "upstream call failed")
        .expect("the failed call is logged");
    assert_eq!(failed["trace_id"], TRACE_ID, "{failed}");
}
