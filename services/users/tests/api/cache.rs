//! Cache-aside against a real Redis (and the in-process cache): hits, invalidation, expiry,
//! single-flight, and failing open when Redis is unreachable.

use std::{cell::Cell, time::Duration};

use serde_json::{Value, json};
use server::ServiceSettings;
use testing::{TestBackend, TestService, admin_token, fresh_database, redis_url, test_keys};
use tokio::time::Instant;
use users_service::{Application, IdentityOptions};

use testing::cache_header;

use crate::helpers::{TEST_ADMIN_ID, TestApp, UsersApi, spawn_with, test_settings};

async fn redis_settings(redis: String, ttl: Duration) -> ServiceSettings {
    let mut settings = test_settings(
        fresh_database(TestBackend::Postgres)
            .await
            .expect("database"),
    );
    settings.cache.redis_url = Some(redis);
    settings.cache.ttl = ttl;
    settings.cache.negative_ttl = ttl;
    settings
}

async fn spawn_on_redis(redis: String, ttl: Duration) -> TestApp {
    spawn_with(redis_settings(redis, ttl).await).await
}

/// users-service with the demo users inserted under it, and the path of Alice's row. Nothing
/// was written through the service, so no invalidation (nor the second delete Redis gets
/// 500 ms after each one) ever touches that row's entry: only its TTL ends it.
async fn spawn_seeded(settings: ServiceSettings) -> (TestApp, String) {
    let app = TestService::start(
        settings,
        runtime::test_logger("users"),
        |settings, logger| async move {
            let app =
                Application::build(settings, IdentityOptions::new(test_keys()), logger).await?;
            app.seed_demo_data().await?;
            Ok(app)
        },
    )
    .await
    .with_token(&admin_token(TEST_ADMIN_ID));
    let users: Value = app.get("/api/users").await.json().await.expect("JSON");
    let alice = users
        .as_array()
        .expect("a page of users")
        .iter()
        .find(|user| user["email"] == "alice@example.com")
        .unwrap_or_else(|| panic!("the demo user Alice in {users}"))["id"]
        .clone();
    (app, format!("/api/users/{alice}"))
}

/// Reads `path` until an answer comes from the cache; every answer on the way (misses too)
/// must be `status`, with `body` when given. A write deletes its entries from Redis twice, the
/// second time 500 ms later, so a read after it may miss once more: whatever the timing, the
/// entry is cached again and nothing stale is ever served.
async fn eventually_a_hit(app: &TestApp, path: &str, status: u16, body: Option<&Value>) {
    testing::eventually(
        &format!("a cache hit on {path}"),
        Duration::from_secs(10),
        || async move {
            let response = app.get(path).await;
            assert_eq!(response.status(), status, "{path}");
            let hit = cache_header(&response) == "hit";
            if let Some(body) = body {
                assert_eq!(&response.json::<Value>().await.expect("JSON"), body);
            }
            hit
        },
    )
    .await;
}

#[tokio::test]
async fn redis_hits_and_invalidation_after_writes() {
    testing::skip_unless!(Postgres, Redis);
    let app = spawn_on_redis(redis_url(), Duration::from_secs(60)).await;
    let user = app.create_user("Alice", "alice@example.com").await;
    let path = format!("/api/users/{}", user["id"]);
    // Each write deletes the entry before it answers: the next read misses and loads the
    // write's result; reads after it are served from Redis again (the 404 too).
    assert_eq!(cache_header(&app.get(&path).await), "miss");
    eventually_a_hit(&app, &path, 200, Some(&user)).await;

    app.put(
        &path,
        &json!({"name": "Alicia", "email": "alice@example.com"}),
    )
    .await;
    let after_put = app.get(&path).await;
    assert_eq!(cache_header(&after_put), "miss");
    let updated: Value = after_put.json().await.expect("JSON");
    assert_eq!(updated["name"], "Alicia");
    eventually_a_hit(&app, &path, 200, Some(&updated)).await;

    assert_eq!(app.delete(&path).await.status(), 204);
    let after_delete = app.get(&path).await;
    assert_eq!(after_delete.status(), 404);
    assert_eq!(cache_header(&after_delete), "miss");
    eventually_a_hit(&app, &path, 404, None).await;
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
    let ttl = Duration::from_millis(700);
    let (app, path) = spawn_seeded(redis_settings(redis_url(), ttl).await).await;
    // When the read that stored the entry was sent: it was stored no earlier. A hit may need
    // more than one miss on a slow machine (an entry can expire before the next read).
    let stored_after = Cell::new(Instant::now());
    assert_eq!(cache_header(&app.get(&path).await), "miss");
    testing::eventually("a hit", Duration::from_secs(10), || {
        let stored_after = &stored_after;
        let sent = Instant::now();
        let response = app.get(&path);
        async move {
            let hit = cache_header(&response.await) == "hit";
            if !hit {
                stored_after.set(sent);
            }
            hit
        }
    })
    .await;
    // Nothing invalidates the entry (see spawn_seeded): the next miss is its expiry, which is
    // Redis's clock at work, so it comes no sooner than the TTL after the entry was stored.
    let expired_by = Cell::new(Instant::now());
    testing::eventually("the entry expires", Duration::from_secs(10), || {
        let expired_by = &expired_by;
        let response = app.get(&path);
        async move {
            let miss = cache_header(&response.await) == "miss";
            expired_by.set(Instant::now());
            miss
        }
    })
    .await;
    let lived = expired_by.get() - stored_after.get();
    assert!(lived >= ttl, "a miss {lived:?} after the entry was stored");
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

/// `app` and `path` from [`spawn_seeded`]: no invalidation can make a second load.
async fn fifty_concurrent_cold_reads_load_once((app, path): (TestApp, String)) {
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
        spawn_seeded(redis_settings(redis_url(), Duration::from_secs(60)).await).await,
    )
    .await;
}

#[tokio::test]
async fn single_flight_in_process() {
    let settings = test_settings(fresh_database(TestBackend::Sqlite).await.expect("database"));
    fifty_concurrent_cold_reads_load_once(spawn_seeded(settings).await).await;
}
