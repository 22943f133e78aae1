//! Every endpoint of `/api/users` and every bad input, on both engines.

use serde_json::{Value, json};
use testing::{TestBackend, on_both_backends};

use testing::{cache_header, error_code};

use crate::helpers::{UsersApi, spawn_app, spawn_with};

async fn create_then_read(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_user(json!({"name": "  Alice ", "email": "alice@example.com"}))
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let created: Value = response.json().await.expect("JSON");
    assert_eq!(created["name"], "Alice", "the name is trimmed");
    assert_eq!(created["email"], "alice@example.com");
    let id = created["id"].as_i64().expect("numeric id");
    assert_eq!(location, format!("/api/users/{id}"));
    assert!(chrono_like(&created["created_at"]));

    let first = app.get(&location).await;
    assert_eq!(first.status(), 200);
    assert_eq!(cache_header(&first), "miss");
    assert_eq!(first.json::<Value>().await.expect("JSON"), created);
    let second = app.get(&location).await;
    assert_eq!(cache_header(&second), "hit");
    assert_eq!(second.json::<Value>().await.expect("JSON"), created);
    app.server.stop().await;
}

fn chrono_like(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|text| text.len() >= 20 && text.ends_with('Z') && text.contains('T'))
}

async fn list_paginates_with_total(backend: TestBackend) {
    let app = spawn_app(backend).await;
    for n in 0..5 {
        app.create_user(&format!("User {n}"), &format!("user{n}@example.com"))
            .await;
    }
    let response = app.get("/api/users?limit=2&offset=1&count=exact").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-total-count"], "5");
    let page: Vec<Value> = response.json().await.expect("array");
    let names: Vec<&str> = page
        .iter()
        .map(|u| u["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["User 1", "User 2"]);

    let all: Vec<Value> = app.get("/api/users").await.json().await.expect("array");
    assert_eq!(all.len(), 5, "default page holds them all");
    let beyond: Vec<Value> = app
        .get("/api/users?offset=10")
        .await
        .json()
        .await
        .expect("array");
    assert!(beyond.is_empty());

    for bad in ["limit=1001", "limit=-1", "limit=abc", "offset=x"] {
        let response = app.get(&format!("/api/users?{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(error_code(response).await, "bad_request");
    }
    app.server.stop().await;
}

async fn batch_by_ids(backend: TestBackend) {
    let app = spawn_app(backend).await;
    for n in 0..3 {
        app.create_user(&format!("U{n}"), &format!("u{n}@example.com"))
            .await;
    }
    let response = app.get("/api/users?ids=3,1,999,1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-total-count"], "2");
    let users: Vec<Value> = response.json().await.expect("array");
    let ids: Vec<i64> = users
        .iter()
        .map(|u| u["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, [1, 3]);
    // The batch filled the cache a single read uses, and a write empties it for both.
    assert_eq!(cache_header(&app.get("/api/users/3").await), "hit");
    let renamed = app
        .client
        .put(app.url("/api/users/3"))
        .json(&json!({"name": "Renamed", "email": "u2@example.com"}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(renamed.status(), 200);
    let again: Vec<Value> = app
        .get("/api/users?ids=1,3")
        .await
        .json()
        .await
        .expect("array");
    assert_eq!(again[1]["name"], "Renamed");
    assert_eq!(again[0]["name"], "U0");
    let empty: Vec<Value> = app
        .get("/api/users?ids=")
        .await
        .json()
        .await
        .expect("array");
    assert!(empty.is_empty());
    assert_eq!(
        error_code(app.get("/api/users?ids=1,two").await).await,
        "bad_request"
    );
    app.server.stop().await;
}

async fn missing_and_malformed_ids(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let missing = app.get("/api/users/42").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(error_code(missing).await, "not_found");
    for bad in ["abc", "1.5", "99999999999999999999999"] {
        let response = app.get(&format!("/api/users/{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(error_code(response).await, "bad_request");
    }
    assert_eq!(
        app.put("/api/users/abc", &json!({"name": "A", "email": "a@b.co"}))
            .await
            .status(),
        400
    );
    assert_eq!(app.delete("/api/users/abc").await.status(), 400);
    app.server.stop().await;
}

async fn update_replaces_and_invalidates(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let user = app.create_user("Alice", "alice@example.com").await;
    app.create_user("Bob", "bob@example.com").await;
    let path = format!("/api/users/{}", user["id"]);
    app.get(&path).await;
    assert_eq!(cache_header(&app.get(&path).await), "hit");

    let response = app
        .put(
            &path,
            &json!({"name": "Alicia", "email": "alicia@example.com"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.expect("JSON");
    assert_eq!(
        (updated["name"].as_str(), updated["email"].as_str()),
        (Some("Alicia"), Some("alicia@example.com"))
    );
    assert_eq!(updated["created_at"], user["created_at"]);

    let read = app.get(&path).await;
    assert_eq!(
        cache_header(&read),
        "miss",
        "the write invalidated the entry"
    );
    assert_eq!(read.json::<Value>().await.expect("JSON"), updated);

    let taken = app
        .put(&path, &json!({"name": "A", "email": "BOB@example.com"}))
        .await;
    assert_eq!(taken.status(), 409);
    assert_eq!(error_code(taken).await, "conflict");
    let own_address = app
        .put(&path, &json!({"name": "A", "email": "ALICIA@example.com"}))
        .await;
    assert_eq!(
        own_address.status(),
        200,
        "a user may keep its own address in another case"
    );

    let missing = app
        .put(
            "/api/users/999",
            &json!({"name": "A", "email": "x@example.com"}),
        )
        .await;
    assert_eq!(missing.status(), 404);
    let invalid = app
        .put(&path, &json!({"name": "", "email": "x@example.com"}))
        .await;
    assert_eq!(invalid.status(), 422);
    app.server.stop().await;
}

async fn delete_removes(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let user = app.create_user("Alice", "alice@example.com").await;
    let path = format!("/api/users/{}", user["id"]);
    app.get(&path).await;
    let deleted = app.delete(&path).await;
    assert_eq!(deleted.status(), 204);
    assert!(deleted.bytes().await.expect("body").is_empty());
    assert_eq!(
        app.get(&path).await.status(),
        404,
        "the cached entry went with it"
    );
    let again = app.delete(&path).await;
    assert_eq!(again.status(), 404);
    assert_eq!(error_code(again).await, "not_found");
    app.create_user("Alice again", "alice@example.com").await;
    app.server.stop().await;
}

async fn validation_names_each_field(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let cases = [
        (json!({"name": "", "email": "a@example.com"}), vec!["name"]),
        (
            json!({"name": "   ", "email": "not-an-address"}),
            vec!["name", "email"],
        ),
        (
            json!({"name": "x".repeat(201), "email": "a@example.com"}),
            vec!["name"],
        ),
        (
            json!({"name": "A", "email": format!("{}@example.com", "a".repeat(250))}),
            vec!["email"],
        ),
        (json!({"name": "A", "email": "a@"}), vec!["email"]),
    ];
    for (body, fields) in cases {
        let response = app.post_user(body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.expect("JSON");
        assert_eq!(error["error"]["code"], "validation_failed");
        let named: Vec<&str> = error["error"]["details"]
            .as_array()
            .expect("details")
            .iter()
            .map(|d| d["field"].as_str().expect("field"))
            .collect();
        assert_eq!(named, fields, "{body}");
    }
    assert!(
        app.post_user(json!({"name": "x".repeat(200), "email": "a@example.com"}))
            .await
            .status()
            .is_success()
    );
    let shapes = [
        json!({"name": "A", "email": "b@example.com", "admin": true}),
        json!({"name": 5, "email": "b@example.com"}),
        json!({"name": "A"}),
        json!(["A", "b@example.com"]),
        json!(null),
    ];
    for body in shapes {
        let response = app.post_user(body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(error_code(response).await, "validation_failed");
    }
    let total = app.get("/api/users?count=exact").await.headers()["x-total-count"]
        .to_str()
        .expect("count")
        .to_owned();
    assert_eq!(total, "1", "nothing invalid was stored");
    app.server.stop().await;
}

async fn emails_are_unique_in_any_case(backend: TestBackend) {
    let app = spawn_app(backend).await;
    app.create_user("Alice", "alice@example.com").await;
    let response = app
        .post_user(json!({"name": "Other", "email": "ALICE@Example.com"}))
        .await;
    assert_eq!(response.status(), 409);
    assert_eq!(error_code(response).await, "conflict");
    app.server.stop().await;
}

async fn a_created_id_is_not_hidden_by_a_cached_404(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let before = app.get("/api/users/1").await;
    assert_eq!(before.status(), 404);
    assert_eq!(cache_header(&before), "miss");
    assert_eq!(
        cache_header(&app.get("/api/users/1").await),
        "hit",
        "the 404 is cached"
    );
    let user = app.create_user("Alice", "alice@example.com").await;
    assert_eq!(user["id"], 1);
    assert_eq!(app.get("/api/users/1").await.status(), 200);
    app.server.stop().await;
}

async fn data_survives_a_restart(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let user = app.create_user("Alice", "alice@example.com").await;
    let settings = app.settings.clone();
    app.server.stop().await;

    let again = spawn_with(settings).await;
    let read = again.get(&format!("/api/users/{}", user["id"])).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().await.expect("JSON"), user);
    assert_eq!(
        again
            .post_user(json!({"name": "B", "email": "alice@example.com"}))
            .await
            .status(),
        409
    );
    again.server.stop().await;
}

on_both_backends!(
    create_then_read,
    list_paginates_with_total,
    batch_by_ids,
    missing_and_malformed_ids,
    update_replaces_and_invalidates,
    delete_removes,
    validation_names_each_field,
    emails_are_unique_in_any_case,
    a_created_id_is_not_hidden_by_a_cached_404,
    data_survives_a_restart,
);

#[tokio::test]
async fn sqlite_files_are_created_in_wal_mode() {
    use sqlx::Connection;
    let dir = std::env::temp_dir().join(format!("platform-wal-{}", uuid::Uuid::new_v4().simple()));
    let url = runtime::DatabaseUrl(format!("sqlite://{}/nested/users.db", dir.display()));
    let app = spawn_with(crate::helpers::test_settings(url.clone())).await;
    app.create_user("Alice", "alice@example.com").await;
    let mut connection = sqlx::SqliteConnection::connect(&url.0)
        .await
        .expect("the file exists");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut connection)
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    connection.close().await.expect("close");
    app.server.stop().await;
    std::fs::remove_dir_all(dir).expect("cleanup");
}
