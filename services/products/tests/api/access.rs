//! Who may do what (services/products/README.md, "Access"): every route × {anonymous, user A,
//! user B, admin} → status, on both engines; refused writes change nothing; a garbage token is a
//! 401 with a Bearer challenge on any route; a client-sent identity header is no identity.

use reqwest::{Method, Response};
use serde_json::{Value, json};
use testing::{TestBackend, error_code, on_both_backends};

use crate::helpers::{ADMIN, ProductsApi, Who, spawn_app};

const ANONYMOUS: Who = Who::Anonymous;
const USER_A: Who = Who::User(2);
const USER_B: Who = Who::User(3);
const CALLERS: [Who; 4] = [ANONYMOUS, USER_A, USER_B, ADMIN];

/// Checks a refusal's status, code and (for 401) challenge.
async fn assert_refused(response: Response, status: u16, label: &str) {
    assert_eq!(response.status(), status, "{label}");
    if status == 401 {
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .expect("a challenge");
        assert!(challenge.starts_with("Bearer"), "{label}: {challenge}");
    }
    let code = error_code(response).await;
    let wanted = if status == 401 {
        "unauthorized"
    } else {
        "forbidden"
    };
    assert_eq!(code, wanted, "{label}");
}

async fn the_access_matrix_holds(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let product = app.create_product("Laptop", json!(999.99)).await;
    let path = format!("/api/products/{}", product["id"]);
    let edit = json!({"name": "Renamed", "price": 1});
    let new = json!({"name": "Phone", "price": 5});

    for who in CALLERS {
        let label = format!("{who:?}");
        let list = app.send_as(who, Method::GET, "/api/products", None).await;
        assert_eq!(list.status(), 200, "GET list as {label}");
        let one = app.send_as(who, Method::GET, &path, None).await;
        assert_eq!(one.status(), 200, "GET one as {label}");
        assert_eq!(one.json::<Value>().await.expect("JSON")["name"], "Laptop");
    }

    let writes = [
        (Method::POST, "/api/products".to_owned(), Some(&new)),
        (Method::PUT, path.clone(), Some(&edit)),
        (Method::DELETE, path.clone(), None),
    ];
    for (method, target, body) in &writes {
        for (who, status) in [(ANONYMOUS, 401), (USER_A, 403), (USER_B, 403)] {
            let response = app.send_as(who, method.clone(), target, *body).await;
            assert_refused(response, status, &format!("{method} {target} as {who:?}")).await;
        }
    }
    // Nothing the refused writes sent was applied.
    let list: Vec<Value> = app.get("/api/products").await.json().await.expect("JSON");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0], product);

    let created = app
        .send_as(ADMIN, Method::POST, "/api/products", Some(&new))
        .await;
    assert_eq!(created.status(), 201);
    let updated = app.send_as(ADMIN, Method::PUT, &path, Some(&edit)).await;
    assert_eq!(updated.status(), 200);
    assert_eq!(
        updated.json::<Value>().await.expect("JSON")["name"],
        "Renamed"
    );
    let deleted = app.send_as(ADMIN, Method::DELETE, &path, None).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(app.get(&path).await.status(), 404);
    app.server.stop().await;
}

on_both_backends!(the_access_matrix_holds);

#[tokio::test]
async fn writes_are_refused_before_the_body_is_looked_at() {
    let app = crate::helpers::spawn_app(TestBackend::Sqlite).await;
    let bodies = [
        ("malformed", "{\"name\":".to_owned(), "application/json"),
        (
            "invalid",
            r#"{"name":"","price":-1}"#.to_owned(),
            "application/json",
        ),
        ("not JSON", "name=P".to_owned(), "text/plain"),
        (
            "too large",
            format!(r#"{{"name":"{}","price":1}}"#, "P".repeat(70_000)),
            "application/json",
        ),
    ];
    for (label, body, content_type) in bodies {
        for (who, status) in [(ANONYMOUS, 401), (USER_A, 403)] {
            let mut request = app
                .client
                .post(app.url("/api/products"))
                .header("content-type", content_type)
                .body(body.clone());
            if let Some(token) = who.token() {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("POST");
            assert_refused(response, status, &format!("{label} as {who:?}")).await;
        }
    }
    app.server.stop().await;
}

#[tokio::test]
async fn a_garbage_token_is_refused_on_every_route_with_a_challenge() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let product = app.create_product("Laptop", json!(1)).await;
    let path = format!("/api/products/{}", product["id"]);
    let body = json!({"name": "X", "price": 1});
    let routes = [
        (Method::GET, "/api/products".to_owned(), None),
        (Method::GET, path.clone(), None),
        (Method::POST, "/api/products".to_owned(), Some(&body)),
        (Method::PUT, path.clone(), Some(&body)),
        (Method::DELETE, path.clone(), None),
    ];
    for token in ["garbage", "a.b.c", "Bearer", "eyJhbGciOiJub25lIn0.e30."] {
        for (method, target, body) in &routes {
            let mut request = app
                .client
                .request(method.clone(), app.url(target))
                .bearer_auth(token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.expect("a response");
            let label = format!("{method} {target} with {token:?}");
            assert_eq!(response.status(), 401, "{label}");
            let challenge = response.headers()["www-authenticate"]
                .to_str()
                .expect("a challenge")
                .to_owned();
            assert!(challenge.contains("invalid_token"), "{label}: {challenge}");
            assert_eq!(error_code(response).await, "unauthorized", "{label}");
        }
    }
    // Another scheme is no bearer token either.
    let response = app
        .client
        .delete(app.url(&path))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), 401);
    assert_eq!(app.get(&path).await.status(), 200, "still there");
    app.server.stop().await;
}

#[tokio::test]
async fn identity_headers_from_clients_are_ignored() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let product = app.create_product("Laptop", json!(1)).await;
    let path = format!("/api/products/{}", product["id"]);
    let spoofed = [
        ("x-user-id", "1"),
        ("x-user-role", "admin"),
        ("x-user-roles", "admin"),
        ("x-forwarded-user", "1"),
    ];
    let mut post = app
        .client
        .post(app.url("/api/products"))
        .json(&json!({"name": "P", "price": 1}));
    let mut delete = app.client.delete(app.url(&path));
    let mut user_delete = app
        .client
        .delete(app.url(&path))
        .bearer_auth(USER_A.token().expect("a token"));
    for (name, value) in spoofed {
        post = post.header(name, value);
        delete = delete.header(name, value);
        user_delete = user_delete.header(name, value);
    }
    assert_refused(post.send().await.expect("POST"), 401, "POST").await;
    assert_refused(delete.send().await.expect("DELETE"), 401, "DELETE").await;
    assert_refused(
        user_delete.send().await.expect("DELETE"),
        403,
        "user DELETE",
    )
    .await;
    assert_eq!(app.get(&path).await.status(), 200, "still there");
    app.server.stop().await;
}

#[tokio::test]
async fn the_openapi_document_declares_the_bearer_scheme_on_the_writes() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let document: Value = app
        .get("/api/products/openapi.json")
        .await
        .json()
        .await
        .expect("JSON");
    let scheme = &document["components"]["securitySchemes"]["bearer_auth"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    for (path, method) in [
        ("/api/products", "post"),
        ("/api/products/{id}", "put"),
        ("/api/products/{id}", "delete"),
    ] {
        let operation = &document["paths"][path][method];
        assert_eq!(
            operation["security"],
            json!([{"bearer_auth": []}]),
            "{method} {path}"
        );
        for status in ["401", "403"] {
            assert!(
                operation["responses"][status].is_object(),
                "{method} {path} documents {status}"
            );
        }
    }
    for (path, method) in [("/api/products", "get"), ("/api/products/{id}", "get")] {
        let operation = &document["paths"][path][method];
        assert_eq!(
            operation["security"],
            json!([{}, {"bearer_auth": []}]),
            "{method} {path}: a token is optional"
        );
        assert!(operation["responses"]["401"].is_object(), "{method} {path}");
    }
    app.server.stop().await;
}
