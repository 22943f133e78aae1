//! The HTTP contract every service keeps (docs/contracts.md): JSON errors for bodies actix rejects,
//! unknown routes and methods; `X-Request-Id`; health, readiness, metrics; OpenAPI.

use serde_json::{Value, json};
use testing::{TestBackend, on_both_backends};

use sqlx::{Connection, Executor};
use testing::{capturing_logger, error_code, fresh_database};

use crate::helpers::{UsersApi, spawn_app, spawn_logging_to, test_settings};

async fn bodies_that_are_not_acceptable_json(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let url = app.url("/api/users");
    let send = |body: Vec<u8>, content_type: Option<&'static str>| {
        let mut request = app.client.post(&url).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    let json = Some("application/json");
    for (body, status, code) in [
        (b"{\"name\": \"A\",".to_vec(), 400, "bad_request"),
        (b"not json".to_vec(), 400, "bad_request"),
        (b"".to_vec(), 400, "bad_request"),
        (vec![0xff, 0xfe, 0x00], 400, "bad_request"),
        (
            b"{\"name\": \"\xff\", \"email\": \"a@b.co\"}".to_vec(),
            400,
            "bad_request",
        ),
    ] {
        let response = send(body.clone(), json).await.expect("POST");
        assert_eq!(
            response.status(),
            status,
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(error_code(response).await, code);
    }
    let valid = serde_json::to_vec(&json!({"name": "A", "email": "a@example.com"})).expect("JSON");
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let response = send(valid.clone(), content_type).await.expect("POST");
        assert_eq!(response.status(), 415, "{content_type:?}");
        assert_eq!(error_code(response).await, "unsupported_media_type");
    }
    let huge =
        serde_json::to_vec(&json!({"name": "A".repeat(70 * 1024), "email": "a@example.com"}))
            .expect("JSON");
    let response = send(huge, json).await.expect("POST");
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "payload_too_large");
    let count = app.get("/api/users?count=exact").await.headers()["x-total-count"]
        .to_str()
        .expect("count")
        .to_owned();
    assert_eq!(count, "0", "nothing was stored");
    app.server.stop().await;
}

async fn unknown_routes_and_methods(backend: TestBackend) {
    let app = spawn_app(backend).await;
    for path in ["/", "/api/usersX", "/api/users/1/posts", "/nope"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(error_code(response).await, "not_found");
    }
    let patch = app
        .client
        .patch(app.url("/api/users/1"))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(patch.status(), 405);
    assert_eq!(error_code(patch).await, "method_not_allowed");
    let delete_all = app
        .client
        .delete(app.url("/api/users"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(delete_all.status(), 405);
    app.server.stop().await;
}

on_both_backends!(
    bodies_that_are_not_acceptable_json,
    unknown_routes_and_methods
);

#[tokio::test]
async fn request_ids_are_kept_or_generated() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let kept = app
        .client
        .get(app.url("/api/users"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .expect("GET");
    assert_eq!(kept.headers()["x-request-id"], "trace-abc-123");
    let too_long = "a".repeat(129);
    let replaced = app
        .client
        .get(app.url("/api/users"))
        .header("x-request-id", &too_long)
        .send()
        .await
        .expect("GET");
    let id = replaced.headers()["x-request-id"].to_str().expect("ascii");
    assert_ne!(id, too_long);
    assert_eq!(id.len(), 36, "a UUID");
    let generated = app.get("/api/users/999").await;
    assert_eq!(
        generated.headers()["x-request-id"].len(),
        36,
        "error responses carry one too"
    );
    app.server.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.expect("JSON");
    assert_eq!(body["checks"], json!({"database": "ok", "cache": "ok"}));

    app.create_user("Alice", "alice@example.com").await;
    app.get("/api/users/1").await;
    app.get("/api/users/1").await;
    app.get("/api/users/2").await;
    let server = &app.server;
    let requests = move |route: &'static str, status: &'static str| async move {
        server
            .metric(
                "http_requests_total",
                &[("route", route), ("status", status), ("service", "users")],
            )
            .await
    };
    assert_eq!(requests("/api/users", "201").await, 1.0);
    assert_eq!(requests("/api/users/{id}", "200").await, 2.0);
    assert_eq!(requests("/api/users/{id}", "404").await, 1.0);
    assert_eq!(
        app.metric(
            "http_request_duration_seconds_count",
            &[("route", "/api/users/{id}")]
        )
        .await,
        3.0
    );
    assert_eq!(
        app.metric("cache_requests_total", &[("result", "hit")])
            .await,
        1.0
    );
    assert_eq!(
        app.metric("cache_requests_total", &[("result", "miss")])
            .await,
        2.0
    );
    assert_eq!(app.metric("cache_loads_total", &[]).await, 2.0);
    app.server.stop().await;
}

#[tokio::test]
async fn openapi_document_describes_the_routes() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let response = app.get("/api/users/openapi.json").await;
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.expect("JSON");
    assert!(
        document["openapi"]
            .as_str()
            .expect("version")
            .starts_with("3.")
    );
    let paths = &document["paths"];
    for (path, method) in [
        ("/api/users", "get"),
        ("/api/users", "post"),
        ("/api/users/{id}", "get"),
        ("/api/users/{id}", "put"),
        ("/api/users/{id}", "delete"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} documented"
        );
    }
    assert!(paths["/api/users/{id}"]["get"]["responses"]["404"].is_object());
    assert!(paths["/api/users"]["post"]["responses"]["409"].is_object());
    assert!(document["components"]["schemas"]["User"].is_object());
    app.server.stop().await;
}

#[tokio::test]
async fn a_server_error_is_opaque_to_the_client_and_logged_with_its_cause() {
    testing::skip_unless!(Postgres);
    let database_url = fresh_database(TestBackend::Postgres)
        .await
        .expect("database");
    let (logger, logs) = capturing_logger("users");
    let app = spawn_logging_to(test_settings(database_url.clone()), logger).await;
    let mut connection = sqlx::PgConnection::connect(&database_url.0)
        .await
        .expect("connect");
    connection
        .execute("DROP TABLE users")
        .await
        .expect("drop the table under the service");

    let response = app
        .client
        .get(app.url("/api/users"))
        .header("x-request-id", "broken-1")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        body,
        json!({"error": {"code": "internal", "message": "internal server error"}})
    );

    let logs = String::from_utf8(logs.lock().expect("logs").clone()).expect("utf-8");
    let line: Value = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["request_id"] == "broken-1")
        .expect("an access line for the request");
    assert_eq!(line["level"], "error");
    assert_eq!(line["status"], 500);
    let cause = line["error"].as_str().expect("the cause");
    assert!(
        cause.contains("users database") && cause.contains("users"),
        "the chain is logged: {cause}"
    );
    app.server.stop().await;
}
