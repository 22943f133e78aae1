//! Cache-aside against a real Redis (and the in-process cache): hits, invalidation, expiry,
//! single-flight, and failing open when Redis is unreachable.

use std::time::Duration;

use serde_json::{Value, json};
use testing::{TestBackend, fresh_database, redis_url};

use testing::cache_header;

use crate::helpers::{TestApp, UsersApi, spawn_with, test_settings};

async fn spawn_on_redis(redis: String, ttl: Duration) -> TestApp {
    let mut settings = test_settings(
        fresh_database(TestBackend::Postgres)
            .await
            .expect("database"),
    );
    settings.cache.redis_url = Some(redis);
    settings.cache.ttl = ttl;
    settings.cache.negative_ttl = ttl;
    spawn_with(settings).await
}

#[tokio::test]
async fn redis_hits_and_invalidation_after_writes() {
    testing::skip_unless!(Postgres, Redis);
    let app = spawn_on_redis(redis_url(), Duration::from_secs(60)).await;
    let user = app.create_user("Alice", "alice@example.com").await;
    let path = format!("/api/users/{}", user["id"]);
    assert_eq!(cache_header(&app.get(&path).await), "miss");
    let hit = app.get(&path).await;
    assert_eq!(cache_header(&hit), "hit");
    assert_eq!(hit.json::<Value>().await.expect("JSON"), user);

    app.put(
        &path,
        &json!({"name": "Alicia", "email": "alice@example.com"}),
    )
    .await;
    let after_put = app.get(&path).await;
    assert_eq!(cache_header(&after_put), "miss");
    assert_eq!(
        after_put.json::<Value>().await.expect("JSON")["name"],
        "Alicia"
    );
    assert_eq!(cache_header(&app.get(&path).await), "hit");

    assert_eq!(app.delete(&path).await.status(), 204);
    let after_delete = app.get(&path).await;
    assert_eq!(after_delete.status(), 404);
    assert_eq!(cache_header(&after_delete), "miss");
    assert_eq!(
        cache_header(&app.get(&path).await),
        "hit",
        "the 404 is cached too"
    );
    assert_eq!(
        app.metric("cache_requests_total", &[("result", "error")])
            .await,
        0.0
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    app.server.stop().await;
}

#[tokio::test]
async fn redis_entries_expire_after_the_ttl() {
    testing::skip_unless!(Postgres, Redis);
    let app = spawn_on_redis(redis_url(), Duration::from_millis(700)).await;
    let user = app.create_user("Alice", "alice@example.com").await;
    let path = format!("/api/users/{}", user["id"]);
    assert_eq!(cache_header(&app.get(&path).await), "miss");
    assert_eq!(cache_header(&app.get(&path).await), "hit");
    // Expiry is Redis's clock at work; nothing else can stand in for it.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(cache_header(&app.get(&path).await), "miss");
    app.server.stop().await;
}

#[tokio::test]
async fn an_unreachable_redis_never_fails_a_request() {
    testing::skip_unless!(Postgres);
    let closed_port = testing::free_port();
    let app = spawn_on_redis(
        format!("redis://127.0.0.1:{closed_port}"),
        Duration::from_secs(60),
    )
    .await;
    let user = app.create_user("Alice", "alice@example.com").await;
    let path = format!("/api/users/{}", user["id"]);
    for _ in 0..5 {
        let read = app.get(&path).await;
        assert_eq!(read.status(), 200);
        assert_eq!(cache_header(&read), "miss");
        assert_eq!(read.json::<Value>().await.expect("JSON"), user);
    }
    assert_eq!(
        app.put(&path, &json!({"name": "B", "email": "b@example.com"}))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get(&path).await.json::<Value>().await.expect("JSON")["name"],
        "B"
    );
    assert_eq!(app.delete(&path).await.status(), 204);
    assert_eq!(app.get(&path).await.status(), 404);
    assert!(
        app.metric("cache_requests_total", &[("result", "error")])
            .await
            >= 1.0
    );

    // The cache fails open, so the instance stays in service: ready, degraded, and saying why.
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.expect("JSON");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["database"], "ok");
    assert!(
        body["checks"]["cache"]
            .as_str()
            .is_some_and(|state| state.starts_with("degraded: ")),
        "{body}"
    );
    assert_eq!(
        app.metric(
            "dependency_up",
            &[("dependency", "cache"), ("required", "false")]
        )
        .await,
        0.0
    );
    assert_eq!(
        app.metric(
            "dependency_up",
            &[("dependency", "database"), ("required", "true")]
        )
        .await,
        1.0
    );
    app.server.stop().await;
}

async fn fifty_concurrent_cold_reads_load_once(app: TestApp) {
    let user = app.create_user("Alice", "alice@example.com").await;
    let path = format!("/api/users/{}", user["id"]);
    let loads_before = app.metric("cache_loads_total", &[]).await;
    let reads = (0..50).map(|_| app.get(&path));
    for response in futures_util::future::join_all(reads).await {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        app.metric("cache_loads_total", &[]).await - loads_before,
        1.0,
        "one database load"
    );
    app.server.stop().await;
}

#[tokio::test]
async fn single_flight_on_redis() {
    testing::skip_unless!(Postgres, Redis);
    fifty_concurrent_cold_reads_load_once(
        spawn_on_redis(redis_url(), Duration::from_secs(60)).await,
    )
    .await;
}

#[tokio::test]
async fn single_flight_in_process() {
    let settings = test_settings(fresh_database(TestBackend::Sqlite).await.expect("database"));
    fifty_concurrent_cold_reads_load_once(spawn_with(settings).await).await;
}
