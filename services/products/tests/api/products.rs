//! Every endpoint of `/api/products` and every bad input, on both engines.

use futures_util::future::join_all;
use serde_json::{Value, json};
use testing::{TestBackend, admin_token, cache_header, error_code, on_both_backends, total_count};

use crate::helpers::{ProductsApi, spawn_app, spawn_with};

async fn create_read_update_delete(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_product(json!({"name": " Laptop ", "price": 999.99}))
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let created: Value = response.json().await.expect("JSON");
    assert_eq!(
        (created["name"].as_str(), created["price"].as_f64()),
        (Some("Laptop"), Some(999.99))
    );
    assert_eq!(location, format!("/api/products/{}", created["id"]));

    let first = app.get(&location).await;
    assert_eq!(cache_header(&first), "miss");
    assert_eq!(first.json::<Value>().await.expect("JSON"), created);
    assert_eq!(cache_header(&app.get(&location).await), "hit");

    let updated = app
        .put_admin(&location, &json!({"name": "Laptop Pro", "price": 1299.5}))
        .await;
    assert_eq!(updated.status(), 200);
    let read = app.get(&location).await;
    assert_eq!(cache_header(&read), "miss");
    let read: Value = read.json().await.expect("JSON");
    assert_eq!(
        (read["name"].as_str(), read["price"].as_f64()),
        (Some("Laptop Pro"), Some(1299.5))
    );

    assert_eq!(app.delete_admin(&location).await.status(), 204);
    let gone = app.get(&location).await;
    assert_eq!(gone.status(), 404);
    assert_eq!(error_code(gone).await, "not_found");
    assert_eq!(app.delete_admin(&location).await.status(), 404);
    assert_eq!(
        app.put_admin(&location, &json!({"name": "X", "price": 1}))
            .await
            .status(),
        404
    );
    app.server.stop().await;
}

async fn prices_are_exact_to_the_cent(backend: TestBackend) {
    let app = spawn_app(backend).await;
    for (sent, returned) in [
        ("999.99", "999.99"),
        ("0.1", "0.1"),
        ("19.90", "19.9"),
        ("0", "0.0"),
        ("42", "42.0"),
        ("999999999999.99", "999999999999.99"),
    ] {
        let body = format!(r#"{{"name":"P","price":{sent}}}"#);
        let response = app
            .client
            .post(app.url("/api/products"))
            .bearer_auth(admin_token(1))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), 201, "{sent}");
        let created: Value = response.json().await.expect("JSON");
        let text = app
            .get(&format!("/api/products/{}", created["id"]))
            .await
            .text()
            .await
            .expect("text");
        assert!(
            text.contains(&format!("\"price\":{returned},")),
            "{sent} → {text}"
        );
    }
    let sum: f64 = app
        .get("/api/products")
        .await
        .json::<Vec<Value>>()
        .await
        .expect("array")
        .iter()
        .map(|p| p["price"].as_f64().expect("price"))
        .sum();
    assert!(sum > 1_000_000_000_000.0);
    app.server.stop().await;
}

async fn bad_products_are_refused(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let cases = [
        (json!({"name": "P", "price": -1}), vec!["price"]),
        (json!({"name": "P", "price": 1.005}), vec!["price"]),
        (json!({"name": "P", "price": 1e13}), vec!["price"]),
        (json!({"name": "", "price": -0.5}), vec!["name", "price"]),
        (json!({"name": "x".repeat(201), "price": 1}), vec!["name"]),
    ];
    for (body, fields) in cases {
        let response = app.post_product(body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.expect("JSON");
        let named: Vec<&str> = error["error"]["details"]
            .as_array()
            .expect("details")
            .iter()
            .map(|d| d["field"].as_str().expect("field"))
            .collect();
        assert_eq!(named, fields, "{body}");
    }
    for body in [
        json!({"name": "P", "price": "9.99"}),
        json!({"name": "P"}),
        json!({"name": "P", "price": 1, "stock": 3}),
        json!({"name": "P", "price": null}),
        json!(["P", 1]),
    ] {
        let response = app.post_product(body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(error_code(response).await, "validation_failed");
    }
    let malformed = app
        .client
        .post(app.url("/api/products"))
        .bearer_auth(admin_token(1))
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .expect("POST");
    assert_eq!(malformed.status(), 400);
    let not_json = app
        .client
        .post(app.url("/api/products"))
        .bearer_auth(admin_token(1))
        .body("name=P")
        .send()
        .await
        .expect("POST");
    assert_eq!(not_json.status(), 415);
    let huge = app
        .post_product(json!({"name": "P".repeat(70_000), "price": 1}))
        .await;
    assert_eq!(huge.status(), 413);
    for path in ["/api/products/abc", "/api/products/1.5"] {
        assert_eq!(error_code(app.get(path).await).await, "bad_request");
    }
    assert_eq!(
        error_code(
            app.client
                .patch(app.url("/api/products/1"))
                .send()
                .await
                .expect("PATCH")
        )
        .await,
        "method_not_allowed"
    );
    assert_eq!(
        total_count(&app.get("/api/products?count=exact").await),
        0,
        "nothing invalid was stored"
    );
    app.server.stop().await;
}

async fn lists_pages_and_batches(backend: TestBackend) {
    let app = spawn_app(backend).await;
    for n in 1..=5 {
        app.create_product(&format!("P{n}"), json!(n)).await;
    }
    let page = app.get("/api/products?limit=2&offset=2&count=exact").await;
    assert_eq!(total_count(&page), 5);
    // The offset page links on by cursor, to the last product, which links nowhere further.
    let next = testing::link(&page, "next").expect("a next page");
    assert!(next.starts_with("/api/products?limit=2&after="), "{next}");
    let last = app.get(&next).await;
    assert_eq!(testing::link(&last, "next"), None);
    let last: Vec<Value> = last.json().await.expect("array");
    assert_eq!(last.len(), 1);
    assert_eq!(last[0]["name"], "P5");
    let foreign = server::encode_cursor("users", 1);
    let response = app.get(&format!("/api/products?after={foreign}")).await;
    assert_eq!(response.status(), 400, "a users cursor");
    assert_eq!(error_code(response).await, "bad_request");
    let names: Vec<String> = page
        .json::<Vec<Value>>()
        .await
        .expect("array")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(names, ["P3", "P4"]);
    let batch: Vec<Value> = app
        .get("/api/products?ids=5,2,77")
        .await
        .json()
        .await
        .expect("array");
    let ids: Vec<i64> = batch
        .iter()
        .map(|p| p["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, [2, 5]);
    assert_eq!(app.get("/api/products?limit=5000").await.status(), 400);
    assert_eq!(app.get("/api/products?ids=a").await.status(), 400);
    app.server.stop().await;
}

async fn concurrent_creates_and_restart(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let creates = (0..100).map(|n| app.post_product(json!({"name": format!("P{n}"), "price": n})));
    for response in join_all(creates).await {
        assert_eq!(response.status(), 201);
    }
    assert_eq!(
        total_count(&app.get("/api/products?limit=0&count=exact").await),
        100
    );
    let settings = app.settings.clone();
    app.server.stop().await;
    let again = spawn_with(settings).await;
    assert_eq!(
        total_count(&again.get("/api/products?count=exact").await),
        100,
        "rows survive a restart"
    );
    again.server.stop().await;
}

on_both_backends!(
    create_read_update_delete,
    prices_are_exact_to_the_cent,
    bad_products_are_refused,
    lists_pages_and_batches,
    concurrent_creates_and_restart,
);

#[tokio::test]
async fn openapi_document_and_health() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let document: Value = app
        .get("/api/products/openapi.json")
        .await
        .json()
        .await
        .expect("JSON");
    assert!(document["paths"]["/api/products/{id}"]["put"].is_object());
    assert!(document["components"]["schemas"]["Product"].is_object());
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.get("/api/products/1").await;
    assert_eq!(
        app.metric(
            "http_requests_total",
            &[("route", "/api/products/{id}"), ("status", "404")]
        )
        .await,
        1.0
    );
    app.server.stop().await;
}
