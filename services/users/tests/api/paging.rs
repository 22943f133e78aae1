//! Lists at scale: keyset pages by cursor with `Link` headers, totals only on request, and
//! PostgreSQL plans that seek an index for every list and write.

use db::Database;
use serde_json::Value;
use server::encode_cursor;
use testing::{TestBackend, assert_index_plan, error_code, fresh_database, link, on_both_backends};

use crate::helpers::{UsersApi, spawn_app};

fn ids(page: &[Value]) -> Vec<i64> {
    page.iter()
        .map(|user| user["id"].as_i64().expect("an id"))
        .collect()
}

async fn cursors_walk_every_user_once_both_ways(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let mut created = Vec::new();
    for n in 0..23 {
        let user = app
            .create_user(&format!("User {n}"), &format!("user{n}@example.com"))
            .await;
        created.push(user["id"].as_i64().expect("id"));
    }

    // Forwards from the first page by rel="next".
    let mut seen = Vec::new();
    let mut next = Some("/api/users?limit=5".to_owned());
    let mut last_page = None;
    let mut pages = 0;
    while let Some(url) = next {
        let response = app.get(&url).await;
        assert_eq!(response.status(), 200, "{url}");
        assert!(
            response.headers().get("x-total-count").is_none(),
            "no exact count unless asked"
        );
        next = link(&response, "next");
        assert_eq!(
            link(&response, "first").as_deref(),
            Some("/api/users?limit=5")
        );
        if pages == 0 {
            assert_eq!(link(&response, "prev"), None, "the first page has no prev");
        }
        last_page = Some(url);
        let page: Vec<Value> = response.json().await.expect("an array");
        assert!(page.len() <= 5);
        seen.extend(ids(&page));
        pages += 1;
    }
    assert_eq!(seen, created, "forwards: every user once, by id");
    assert_eq!(pages, 5);

    // Backwards from the last page by rel="prev".
    let response = app.get(&last_page.expect("a last page")).await;
    let mut prev = link(&response, "prev");
    let mut backwards: Vec<i64> = ids(&response.json::<Vec<Value>>().await.expect("array"));
    while let Some(url) = prev {
        let response = app.get(&url).await;
        assert_eq!(response.status(), 200, "{url}");
        prev = link(&response, "prev");
        let mut page = ids(&response.json::<Vec<Value>>().await.expect("array"));
        page.extend(backwards);
        backwards = page;
    }
    assert_eq!(backwards, created, "backwards: every user once, by id");

    // An offset page links on by cursor; deleted rows leave no hole in a cursor walk.
    let response = app.get("/api/users?limit=5&offset=5").await;
    let next = link(&response, "next").expect("an offset page links to the next");
    assert_eq!(
        ids(&response.json::<Vec<Value>>().await.expect("array")),
        created[5..10]
    );
    let deleted = app.delete(&format!("/api/users/{}", created[10])).await;
    assert_eq!(deleted.status(), 204);
    let page: Vec<Value> = app.get(&next).await.json().await.expect("array");
    assert_eq!(ids(&page), created[11..16]);

    let exact = app.get("/api/users?limit=1&count=exact").await;
    assert_eq!(exact.headers()["x-total-count"], "22");
    app.server.stop().await;
}

async fn bad_positions_are_refused(backend: TestBackend) {
    let app = spawn_app(backend).await;
    app.create_user("Alice", "alice@example.com").await;
    let ours = encode_cursor("users", 1);
    let long = "A".repeat(200);
    let refused = [
        "after=not-a-cursor".to_owned(),
        format!("after={}", encode_cursor("products", 1)),
        format!("before={long}"),
        "after=dXNlcnM6eA".to_owned(), // "users:x"
        format!("after={ours}&before={ours}"),
        format!("after={ours}&offset=2"),
        format!("before={ours}&ids=1"),
        "offset=10001".to_owned(),
        "count=estimate".to_owned(),
        "count=".to_owned(),
    ];
    for query in refused {
        let response = app.get(&format!("/api/users?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(error_code(response).await, "bad_request", "{query}");
    }
    let response = app.get(&format!("/api/users?after={ours}")).await;
    assert_eq!(response.status(), 200);
    app.server.stop().await;
}

on_both_backends!(
    cursors_walk_every_user_once_both_ways,
    bad_positions_are_refused
);

/// PostgreSQL's statistics stand in for the total when no exact count is asked for.
#[tokio::test]
async fn postgres_lists_carry_the_planner_estimate() {
    testing::skip_unless!(Postgres);
    let app = spawn_app(TestBackend::Postgres).await;
    for n in 0..3 {
        app.create_user(&format!("U{n}"), &format!("u{n}@example.com"))
            .await;
    }
    let database = Database::connect(&app.settings.database_url, users_service::migrations())
        .await
        .expect("the test database");
    sqlx::query("ANALYZE users")
        .execute(database.pool())
        .await
        .expect("ANALYZE");
    let response = app.get("/api/users?limit=1").await;
    assert_eq!(response.headers()["x-total-count-estimate"], "3");
    assert!(response.headers().get("x-total-count").is_none());
    let exact = app.get("/api/users?limit=1&count=exact").await;
    assert_eq!(exact.headers()["x-total-count"], "3");
    assert!(exact.headers().get("x-total-count-estimate").is_none());
    app.server.stop().await;
}

/// Every list page and every write's look-up seeks an index, whatever the table's size.
#[tokio::test]
async fn hot_queries_seek_indexes() {
    testing::skip_unless!(Postgres);
    let url = fresh_database(TestBackend::Postgres)
        .await
        .expect("a database");
    let database = Database::connect(&url, users_service::migrations())
        .await
        .expect("migrated");
    for (what, sql) in [
        (
            "first page",
            "SELECT id, name, email, created_at FROM users ORDER BY id ASC LIMIT 101",
        ),
        (
            "page after a cursor",
            "SELECT id, name, email, created_at FROM users WHERE id > 500000 \
             ORDER BY id ASC LIMIT 101",
        ),
        (
            "page before a cursor",
            "SELECT id, name, email, created_at FROM users WHERE id < 500000 \
             ORDER BY id DESC LIMIT 101",
        ),
        (
            "ids batch",
            "SELECT id, name, email, created_at FROM users WHERE id IN (1, 2, 3) ORDER BY id",
        ),
        (
            "the unique email check",
            "SELECT id FROM users WHERE email_key = 'alice@example.com'",
        ),
        (
            "whether an admin exists",
            "SELECT id FROM users WHERE role = 'admin' LIMIT 1",
        ),
        (
            "a refresh token",
            "SELECT user_id FROM refresh_tokens WHERE token_hash = 'x'",
        ),
    ] {
        assert_index_plan(&database, what, sql).await;
    }
}
