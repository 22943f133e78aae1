//! Every mutation and its error paths, on SQLite and PostgreSQL.

use serde_json::{Value, json};
use shared::testing::TestBackend;

use crate::helpers::{GraphqlApi, TestPlatform, create_post, create_user, first_error_code};

shared::on_both_backends!(
    create_user_goes_to_users_service,
    create_user_errors_come_back_coded,
    create_post_checks_its_author_and_fields,
    update_and_delete_post,
);

const CREATE_USER: &str = "mutation($name: String!, $email: String!) { \
    createUser(name: $name, email: $email) { id name email } }";

const CREATE_POST: &str = "mutation($title: String!, $content: String, $author: ID!) { \
    createPost(title: $title, content: $content, authorId: $author) { id title content } }";

async fn create_user_goes_to_users_service(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let data = platform
        .graphql
        .data(
            CREATE_USER,
            json!({"name": "Carol", "email": "carol@example.com"}),
        )
        .await;
    assert_eq!(data["createUser"]["name"], "Carol");
    let id = data["createUser"]["id"].as_str().expect("an id");
    let stored = platform.users.get(&format!("/api/users/{id}")).await;
    assert_eq!(stored.status(), 200, "the user is in users-service");
    let stored: Value = stored.json().await.expect("user JSON");
    assert_eq!(stored["email"], "carol@example.com");
}

async fn create_user_errors_come_back_coded(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    create_user(&platform.users, "Dan", "dan@example.com").await;
    let taken = platform
        .graphql
        .graphql(
            CREATE_USER,
            json!({"name": "Dan 2", "email": "DAN@example.com"}),
        )
        .await;
    assert_eq!(first_error_code(&taken), "CONFLICT", "{taken}");
    assert!(taken["data"].is_null(), "{taken}");

    let invalid = platform
        .graphql
        .graphql(CREATE_USER, json!({"name": " ", "email": "not-an-address"}))
        .await;
    assert_eq!(first_error_code(&invalid), "BAD_USER_INPUT", "{invalid}");
    let fields: Vec<&str> = invalid["errors"][0]["extensions"]["details"]
        .as_array()
        .expect("details from users-service")
        .iter()
        .filter_map(|detail| detail["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"email") && fields.contains(&"name"),
        "{invalid}"
    );
    let total = platform.users.get("/api/users").await;
    assert_eq!(
        shared::testing::total_count(&total),
        1,
        "nothing else was stored"
    );
}

async fn create_post_checks_its_author_and_fields(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let author = create_user(&platform.users, "Erin", "erin@example.com").await;
    let author_id = author.to_string();

    let created = platform
        .graphql
        .data(
            CREATE_POST,
            json!({"title": "  Trimmed  ", "content": null, "author": author_id}),
        )
        .await;
    assert_eq!(created["createPost"]["title"], "Trimmed");
    assert_eq!(created["createPost"]["content"], Value::Null);

    let unknown = platform
        .graphql
        .graphql(CREATE_POST, json!({"title": "x", "author": "777777"}))
        .await;
    assert_eq!(first_error_code(&unknown), "NOT_FOUND", "{unknown}");

    let cases = [
        json!({"title": "", "author": author_id}),
        json!({"title": "   ", "author": author_id}),
        json!({"title": "t".repeat(301), "author": author_id}),
        json!({"title": "ok", "content": "c".repeat(100_001), "author": author_id}),
        json!({"title": "ok", "author": "not-a-number"}),
    ];
    for variables in cases {
        let body = platform
            .graphql
            .graphql(CREATE_POST, variables.clone())
            .await;
        assert_eq!(
            first_error_code(&body),
            "BAD_USER_INPUT",
            "{variables}: {body}"
        );
    }
    let longest = platform
        .graphql
        .data(
            CREATE_POST,
            json!({"title": "t".repeat(300), "content": "c".repeat(100_000), "author": author_id}),
        )
        .await;
    assert_eq!(
        longest["createPost"]["content"].as_str().map(str::len),
        Some(100_000)
    );

    let all = platform
        .graphql
        .data("{ posts { title } }", json!({}))
        .await;
    assert_eq!(
        all["posts"].as_array().map(Vec::len),
        Some(2),
        "only the two valid posts were stored: {all}"
    );
}

async fn update_and_delete_post(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let author = create_user(&platform.users, "Finn", "finn@example.com").await;
    let post = create_post(&platform.graphql, "Draft", author).await;
    let id = post["id"].clone();

    let update = "mutation($id: ID!, $title: String!, $content: String) { \
        updatePost(id: $id, title: $title, content: $content) { id title content authorId } }";
    let updated = platform
        .graphql
        .data(
            update,
            json!({"id": id, "title": "Final", "content": "done"}),
        )
        .await;
    assert_eq!(updated["updatePost"]["title"], "Final");
    assert_eq!(updated["updatePost"]["content"], "done");
    assert_eq!(updated["updatePost"]["authorId"], author.to_string());
    let invalid = platform
        .graphql
        .graphql(update, json!({"id": id, "title": ""}))
        .await;
    assert_eq!(first_error_code(&invalid), "BAD_USER_INPUT");
    let missing = platform
        .graphql
        .graphql(update, json!({"id": "999999", "title": "x"}))
        .await;
    assert_eq!(first_error_code(&missing), "NOT_FOUND");

    let delete = "mutation($id: ID!) { deletePost(id: $id) }";
    let deleted = platform.graphql.data(delete, json!({"id": id})).await;
    assert_eq!(deleted["deletePost"], true);
    let again = platform.graphql.graphql(delete, json!({"id": id})).await;
    assert_eq!(first_error_code(&again), "NOT_FOUND");
    let gone = platform
        .graphql
        .data(
            "query($id: ID!) { post(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(gone["post"], Value::Null);
}
