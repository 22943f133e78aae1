//! Batching, counted where it happens: users-service's own request metrics and this service's
//! SQL statement counter — never by timing.

use serde_json::json;
use testing::{TestBackend, TestService};

use crate::helpers::{GraphqlApi, TestPlatform, create_user};

testing::on_both_backends!(nested_queries_make_one_call_per_service_and_level);

async fn users_list_calls(users: &TestService) -> f64 {
    users
        .metric(
            "http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/api/users"),
                ("status", "200"),
            ],
        )
        .await
}

async fn sql_statements(graphql: &TestService, query: &str) -> f64 {
    graphql
        .metric("graphql_sql_queries_total", &[("query", query)])
        .await
}

async fn nested_queries_make_one_call_per_service_and_level(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let mut authors = Vec::new();
    for index in 0..30 {
        authors.push(
            create_user(
                &platform.users,
                &format!("Author {index}"),
                &format!("author{index}@example.com"),
            )
            .await,
        );
    }
    for index in 0..100 {
        let author = authors[index % authors.len()];
        platform
            .graphql
            .data_as(
                Some(&crate::helpers::user(author)),
                "mutation($t: String!, $a: ID!) { createPost(title: $t, authorId: $a) { id } }",
                json!({"t": format!("Post {index}"), "a": author.to_string()}),
            )
            .await;
    }

    // Posts → authors: one users-service call (its ?ids= batch) for 100 posts by 30 authors.
    let calls_before = users_list_calls(&platform.users).await;
    let lists_before = sql_statements(&platform.graphql, "list").await;
    let data = platform
        .graphql
        .data("{ posts { title author { name } } }", json!({}))
        .await;
    let posts = data["posts"].as_array().expect("posts");
    assert_eq!(posts.len(), 100);
    assert!(
        posts.iter().all(|post| post["author"]["name"]
            .as_str()
            .is_some_and(|name| name.starts_with("Author "))),
        "every post has its author"
    );
    assert_eq!(users_list_calls(&platform.users).await - calls_before, 1.0);
    assert_eq!(
        sql_statements(&platform.graphql, "list").await - lists_before,
        1.0
    );

    // Users → posts: one users-service call for the list, one SQL statement for every post.
    let calls_before = users_list_calls(&platform.users).await;
    let batches_before = sql_statements(&platform.graphql, "by_authors").await;
    let data = platform
        .graphql
        .data("{ users { name posts { title } } }", json!({}))
        .await;
    let users = data["users"].as_array().expect("users");
    assert_eq!(users.len(), 30);
    let post_count: usize = users
        .iter()
        .map(|user| user["posts"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(post_count, 100);
    assert_eq!(users_list_calls(&platform.users).await - calls_before, 1.0);
    assert_eq!(
        sql_statements(&platform.graphql, "by_authors").await - batches_before,
        1.0
    );
    assert_eq!(
        sql_statements(&platform.graphql, "find").await,
        0.0,
        "no statement per user"
    );

    // Users → posts → their authors: the authors are those users, nothing more is asked.
    let calls_before = users_list_calls(&platform.users).await;
    let data = platform
        .graphql
        .data(
            "{ users(limit: 50) { name posts { author { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(users_list_calls(&platform.users).await - calls_before, 1.0);
    let users = data["users"].as_array().expect("users");
    assert!(
        users
            .iter()
            .all(|user| user["posts"].as_array().is_some_and(|posts| posts
                .iter()
                .all(|post| post["author"]["name"] == user["name"]))),
        "{data}"
    );
}
