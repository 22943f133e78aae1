//! users-service down, slow, or answering: GraphQL errors with codes, never an HTTP 500 or a
//! panic; and the request id follows the request to users-service.

use std::time::Duration;

use serde_json::json;
use testing::{
    TestBackend, TestService, capturing_logger, free_port, fresh_database, service_settings,
};

use crate::helpers::{
    GraphqlApi, TestPlatform, create_post, create_user, first_error_code, graphql_settings,
    spawn_graphql,
};

#[tokio::test]
async fn users_service_down_is_upstream_unavailable() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let author = create_user(&platform.users, "Gus", "gus@example.com").await;
    create_post(&platform.graphql, "Before the outage", author).await;
    let TestPlatform { graphql, users, .. } = platform;
    users.server.stop().await;

    for query in [
        "{ users { id } }",
        "{ user(id: 1) { name } }",
        "{ posts { title author { name } } }",
        "mutation { createUser(name: \"Hal\", email: \"hal@example.com\") { id } }",
        "mutation { createPost(title: \"t\", authorId: 1) { id } }",
    ] {
        let response = graphql
            .post_graphql_as(Some(&crate::helpers::admin()), query, json!({}))
            .await;
        assert_eq!(
            response.status(),
            200,
            "{query}: a GraphQL error, not an HTTP error"
        );
        let body: serde_json::Value = response.json().await.expect("JSON");
        assert_eq!(
            first_error_code(&body),
            "UPSTREAM_UNAVAILABLE",
            "{query}: {body}"
        );
        // Which service, and nothing of where it is or what went wrong.
        assert_eq!(
            body["errors"][0]["message"], "users-service is unavailable",
            "{query}: {body}"
        );
    }
    // Posts themselves are still served: they are this service's own.
    let own = graphql.data("{ posts { title } }", json!({})).await;
    assert_eq!(own["posts"], json!([{"title": "Before the outage"}]));
    assert_eq!(graphql.get("/healthz").await.status(), 200);
    assert!(
        graphql
            .metric(
                "graphql_upstream_requests_total",
                &[("upstream", "users"), ("outcome", "error")]
            )
            .await
            >= 5.0
    );
}

#[tokio::test]
async fn users_service_never_answering_is_upstream_timeout() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let silent_url = format!("http://{}", silent.local_addr().expect("address"));
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    let mut settings = graphql_settings(
        database,
        &silent_url,
        &format!("http://127.0.0.1:{}", free_port()),
    );
    settings.timeouts.request = Duration::from_millis(300);
    let graphql = spawn_graphql(settings).await;

    let body = graphql.graphql("{ users { id } }", json!({})).await;
    assert_eq!(first_error_code(&body), "UPSTREAM_TIMEOUT", "{body}");
    let products = graphql.graphql("{ products { id } }", json!({})).await;
    assert_eq!(
        first_error_code(&products),
        "UPSTREAM_UNAVAILABLE",
        "{products}"
    );
    held.abort();
}

#[tokio::test]
async fn the_request_id_is_passed_to_users_service() {
    let (users_logger, users_log) = capturing_logger(users_service::NAME);
    let users = TestService::start(
        service_settings(
            users_service::NAME,
            users_service::DEFAULT_PORT,
            fresh_database(TestBackend::Sqlite).await.expect("database"),
        ),
        users_logger,
        crate::helpers::build_users,
    )
    .await;
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    let graphql = spawn_graphql(graphql_settings(
        database,
        &users.url(""),
        &format!("http://127.0.0.1:{}", free_port()),
    ))
    .await;

    let response = graphql
        .client
        .post(graphql.url("/graphql"))
        .header("x-request-id", "trace-graphql-42")
        .json(&json!({"query": "{ users { id } }"}))
        .send()
        .await
        .expect("POST /graphql");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "trace-graphql-42");

    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let text = String::from_utf8_lossy(&users_log.lock().expect("log")).into_owned();
            if text.lines().any(|line| {
                line.contains("\"request_id\":\"trace-graphql-42\"") && line.contains("/api/users")
            }) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(seen.is_ok(), "users-service logged the caller's request id");
}

/// A users-service stand-in answering every request with a 500 carrying internals.
async fn failing_users_service() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let serving = tokio::spawn(async move {
        while let Ok((mut connection, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0_u8; 4096];
                let _ = connection.read(&mut request).await;
                let body = "panic at db.internal:5432 secret-stack-trace";
                let answer = format!(
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = connection.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, serving)
}

#[tokio::test]
async fn upstream_failures_reach_clients_opaque_and_the_log_in_full() {
    let (users_url, serving) = failing_users_service().await;
    let (logger, log) = capturing_logger(graphql_service::NAME);
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    let settings = graphql_settings(
        database,
        &users_url,
        &format!("http://127.0.0.1:{}", free_port()),
    );
    let graphql = crate::helpers::spawn_graphql_logging_to(settings, logger).await;

    for (query, message) in [
        ("{ users { id } }", "users-service is unavailable"),
        ("{ products { id } }", "products-service is unavailable"),
    ] {
        let response = graphql
            .client
            .post(graphql.url("/graphql"))
            .header("x-request-id", "opaque-1")
            .json(&json!({"query": query}))
            .send()
            .await
            .expect("POST /graphql");
        let text = response.text().await.expect("a body");
        let body: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(first_error_code(&body), "UPSTREAM_UNAVAILABLE", "{body}");
        assert_eq!(body["errors"][0]["message"], message, "{body}");
        for internal in ["secret-stack-trace", "127.0.0.1", "http://", "500"] {
            assert!(
                !text.contains(internal),
                "{internal} reached the client: {text}"
            );
        }
    }
    let logged = String::from_utf8_lossy(&log.lock().expect("log")).into_owned();
    let failure = logged
        .lines()
        .find(|line| {
            line.contains("upstream call failed") && line.contains("\"service\":\"users\"")
        })
        .unwrap_or_else(|| panic!("the failure is logged: {logged}"));
    for detail in ["secret-stack-trace", &users_url, "opaque-1", "500"] {
        assert!(failure.contains(detail), "{detail} missing from {failure}");
    }
    serving.abort();
}
