//! Every query, on SQLite and PostgreSQL: the seed's `users`, `user`, `posts`, `post`, plus
//! products and pagination.

use serde_json::json;
use testing::TestBackend;

use crate::helpers::{GraphqlApi, TestPlatform, create_post, create_user, first_error_code};

testing::on_both_backends!(
    users_and_their_posts,
    one_user_or_null,
    posts_with_their_authors_and_pagination,
    one_post_or_null,
    products_and_one_product,
    bad_arguments_are_bad_user_input,
);

async fn users_and_their_posts(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let alice = create_user(&platform.users, "Alice", "alice@example.com").await;
    let bob = create_user(&platform.users, "Bob", "bob@example.com").await;
    create_post(&platform.graphql, "First", alice).await;
    create_post(&platform.graphql, "Second", alice).await;

    let data = platform
        .graphql
        .data_as(
            Some(&crate::helpers::admin()),
            "{ users { id name email createdAt posts { title } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["users"].as_array().map(Vec::len), Some(2));
    assert_eq!(data["users"][0]["id"], alice.to_string());
    assert_eq!(data["users"][0]["name"], "Alice");
    assert_eq!(data["users"][0]["email"], "alice@example.com");
    assert!(
        data["users"][0]["createdAt"]
            .as_str()
            .is_some_and(|at| !at.is_empty())
    );
    assert_eq!(
        data["users"][0]["posts"],
        json!([{"title": "First"}, {"title": "Second"}])
    );
    assert_eq!(data["users"][1]["id"], bob.to_string());
    assert_eq!(data["users"][1]["posts"], json!([]));

    let page = platform
        .graphql
        .data("{ users(limit: 1, offset: 1) { name } }", json!({}))
        .await;
    assert_eq!(page["users"], json!([{"name": "Bob"}]));
}

async fn one_user_or_null(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let alice = create_user(&platform.users, "Alice", "alice@example.com").await;
    let query = "query($id: ID!) { user(id: $id) { id name posts { id } } }";
    let data = platform
        .graphql
        .data(query, json!({"id": alice.to_string()}))
        .await;
    assert_eq!(data["user"]["name"], "Alice");
    let missing = platform.graphql.data(query, json!({"id": "999999"})).await;
    assert_eq!(missing["user"], serde_json::Value::Null);
}

async fn posts_with_their_authors_and_pagination(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let alice = create_user(&platform.users, "Alice", "alice@example.com").await;
    let bob = create_user(&platform.users, "Bob", "bob@example.com").await;
    for (title, author) in [("A", alice), ("B", bob), ("C", alice)] {
        create_post(&platform.graphql, title, author).await;
    }
    let data = platform
        .graphql
        .data(
            "{ posts { id title content authorId createdAt author { name } } }",
            json!({}),
        )
        .await;
    let titles: Vec<_> = data["posts"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|post| (post["title"].clone(), post["author"]["name"].clone()))
        .collect();
    assert_eq!(
        titles,
        vec![
            (json!("A"), json!("Alice")),
            (json!("B"), json!("Bob")),
            (json!("C"), json!("Alice"))
        ]
    );
    assert_eq!(data["posts"][0]["content"], "text");
    assert_eq!(data["posts"][1]["authorId"], bob.to_string());

    let page = platform
        .graphql
        .data("{ posts(limit: 2, offset: 1) { title } }", json!({}))
        .await;
    assert_eq!(page["posts"], json!([{"title": "B"}, {"title": "C"}]));
    let by_author = platform
        .graphql
        .data(
            "query($a: ID!) { posts(authorId: $a) { title } }",
            json!({"a": alice.to_string()}),
        )
        .await;
    assert_eq!(by_author["posts"], json!([{"title": "A"}, {"title": "C"}]));
}

async fn one_post_or_null(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let alice = create_user(&platform.users, "Alice", "alice@example.com").await;
    let post = create_post(&platform.graphql, "Hello", alice).await;
    let query = "query($id: ID!) { post(id: $id) { title author { email } } }";
    let data = platform
        .graphql
        .data_as(
            Some(&crate::helpers::user(alice)),
            query,
            json!({"id": post["id"]}),
        )
        .await;
    assert_eq!(
        data["post"],
        json!({"title": "Hello", "author": {"email": "alice@example.com"}})
    );
    let missing = platform.graphql.data(query, json!({"id": "424242"})).await;
    assert_eq!(missing["post"], serde_json::Value::Null);
}

async fn products_and_one_product(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    for (name, price) in [("Laptop", "999.99"), ("Mouse", "19.90")] {
        let body: serde_json::Value =
            serde_json::from_str(&format!(r#"{{"name": "{name}", "price": {price}}}"#))
                .expect("JSON");
        let response = platform
            .products
            .client
            .post(platform.products.url("/api/products"))
            .bearer_auth(crate::helpers::admin())
            .json(&body)
            .send()
            .await
            .expect("POST /api/products");
        assert_eq!(response.status(), 201);
    }
    let data = platform
        .graphql
        .data("{ products { id name price createdAt } }", json!({}))
        .await;
    assert_eq!(data["products"][0]["name"], "Laptop");
    assert_eq!(data["products"][0]["price"], json!(999.99));
    assert_eq!(data["products"][1]["price"], json!(19.9));
    let id = data["products"][1]["id"].clone();
    let one = platform
        .graphql
        .data(
            "query($id: ID!) { product(id: $id) { name } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(one["product"]["name"], "Mouse");
    let missing = platform
        .graphql
        .data("{ product(id: 987654) { name } }", json!({}))
        .await;
    assert_eq!(missing["product"], serde_json::Value::Null);
    let page = platform
        .graphql
        .data("{ products(limit: 1) { name } }", json!({}))
        .await;
    assert_eq!(page["products"], json!([{"name": "Laptop"}]));
}

async fn bad_arguments_are_bad_user_input(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    for query in [
        r#"{ user(id: "abc") { name } }"#,
        r#"{ user(id: "-1") { name } }"#,
        r#"{ post(id: "1.5") { title } }"#,
        "{ users(limit: 1001) { name } }",
        "{ users(limit: -1) { name } }",
        "{ posts(offset: -5) { title } }",
        r#"{ posts(authorId: "x") { title } }"#,
        r#"{ product(id: "") { name } }"#,
    ] {
        let body = platform.graphql.graphql(query, json!({})).await;
        assert_eq!(first_error_code(&body), "BAD_USER_INPUT", "{query}: {body}");
    }
    // A wrong argument type is a validation error of the document itself.
    let body = platform
        .graphql
        .graphql("{ users(limit: \"ten\") { name } }", json!({}))
        .await;
    assert!(body["errors"][0]["message"].as_str().is_some(), "{body}");
    assert!(
        body.get("data").is_none() || body["data"].is_null(),
        "{body}"
    );
}
