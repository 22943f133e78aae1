//! Concurrent writers: no lost rows, and exactly one winner for one email.

use futures_util::future::join_all;
use serde_json::json;
use testing::{TestBackend, on_both_backends};

use crate::helpers::{UsersApi, spawn_app};

async fn hundred_concurrent_creates_make_hundred_rows(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let creates = (0..100).map(|n| {
        app.post_user(json!({"name": format!("U{n}"), "email": format!("u{n}@example.com")}))
    });
    for response in join_all(creates).await {
        assert_eq!(response.status(), 201);
    }
    assert_eq!(
        app.get("/api/users?limit=1&count=exact").await.headers()["x-total-count"],
        "100"
    );
    app.server.stop().await;
}

async fn one_email_has_one_winner(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let creates = (0..20)
        .map(|n| app.post_user(json!({"name": format!("U{n}"), "email": "same@example.com"})));
    let statuses: Vec<u16> = join_all(creates)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(
        app.get("/api/users?count=exact").await.headers()["x-total-count"],
        "1"
    );
    app.server.stop().await;
}

on_both_backends!(
    hundred_concurrent_creates_make_hundred_rows,
    one_email_has_one_winner
);
