//! The post-list page cache: a write is seen by the next read on the instance that made it,
//! and on another instance as soon as the announcement over Redis reaches it (well before the
//! page would expire), with one SQL statement per page between writes.

use std::time::Duration;

use serde_json::{Value, json};
use testing::{TestBackend, eventually};

use crate::helpers::{GraphqlApi, TestPlatform, create_post, create_user, instances_over_redis};

testing::on_both_backends!(writes_are_seen_by_the_next_read,);

const LIST: &str = "{ posts(limit: 10) { id title } }";

fn titles(data: &Value) -> Vec<String> {
    data["posts"]
        .as_array()
        .expect("posts")
        .iter()
        .map(|post| post["title"].as_str().expect("title").to_owned())
        .collect()
}

async fn list_statements(graphql: &testing::TestService) -> f64 {
    graphql
        .metric("graphql_sql_queries_total", &[("query", "list")])
        .await
}

async fn writes_are_seen_by_the_next_read(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let author = create_user(&platform.users, "Ines", "ines@example.com").await;
    let post = create_post(&platform.graphql, "First", author).await;
    let id = post["id"].as_str().expect("id").to_owned();

    let before = list_statements(&platform.graphql).await;
    for _ in 0..5 {
        assert_eq!(
            titles(&platform.graphql.data(LIST, json!({})).await),
            ["First"]
        );
    }
    assert_eq!(
        list_statements(&platform.graphql).await - before,
        1.0,
        "one statement for five reads of the page"
    );

    platform
        .graphql
        .data_as(
            Some(&crate::helpers::user(author)),
            "mutation($id: ID!) { updatePost(id: $id, title: \"Renamed\") { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        titles(&platform.graphql.data(LIST, json!({})).await),
        ["Renamed"]
    );
    create_post(&platform.graphql, "Second", author).await;
    assert_eq!(
        titles(&platform.graphql.data(LIST, json!({})).await),
        ["Renamed", "Second"]
    );
    platform
        .graphql
        .data_as(
            Some(&crate::helpers::user(author)),
            "mutation($id: ID!) { deletePost(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        titles(&platform.graphql.data(LIST, json!({})).await),
        ["Second"]
    );
}

#[tokio::test]
async fn a_write_on_one_instance_empties_the_pages_of_another() {
    testing::skip_unless!(Postgres, Redis);
    let platform = TestPlatform::spawn(TestBackend::Postgres).await;
    let author = create_user(&platform.users, "Joe", "joe@example.com").await;
    // Pages would live a minute: only the announcement can make the change show.
    let instances = instances_over_redis(
        &platform.users.url(""),
        &platform.products.url(""),
        |settings| settings.post_page_ttl = Duration::from_secs(60),
    )
    .await;
    create_post(&instances[1], "Old", author).await;
    assert_eq!(titles(&instances[0].data(LIST, json!({})).await), ["Old"]);
    create_post(&instances[1], "New", author).await;
    eventually(
        "the other instance's page emptied by the announcement",
        Duration::from_secs(5),
        || async { titles(&instances[0].data(LIST, json!({})).await) == ["Old", "New"] },
    )
    .await;
}
