//! `Query.postsConnection`: every post exactly once paging forwards by `after: endCursor` and
//! backwards by `last`/`before`, on both engines, with and without `authorId`; hostile
//! arguments are `BAD_USER_INPUT`; the connection costs like a list in the complexity limit;
//! and on PostgreSQL every posts list reads an index in order (no scan, no sort).

use db::Database;
use graphql_service::posts::{LIST_BY_AUTHOR_SQL, LIST_SQL, by_authors_sql, page_sql};
use serde_json::{Value, json};
use server::{ListPage, Seek, encode_cursor};
use testing::{TestBackend, assert_index_plan, assert_index_plan_uses, fresh_database};

use crate::helpers::{GraphqlApi, TestPlatform, create_post, create_user, first_error_code};

testing::on_both_backends!(every_post_once_forwards_and_backwards,);

const FORWARDS: &str = "query($first: Int, $after: String, $author: ID) { \
    postsConnection(first: $first, after: $after, authorId: $author) { \
      edges { cursor node { id title author { name } } } \
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

const BACKWARDS: &str = "query($last: Int, $before: String, $author: ID) { \
    postsConnection(last: $last, before: $before, authorId: $author) { \
      edges { cursor node { id title author { name } } } \
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

/// The ids of a connection's nodes, checking each edge's cursor is its page's start or end
/// cursor where it should be.
fn ids(connection: &Value) -> Vec<String> {
    let edges = connection["edges"].as_array().expect("edges");
    if let (Some(first), Some(last)) = (edges.first(), edges.last()) {
        assert_eq!(first["cursor"], connection["pageInfo"]["startCursor"]);
        assert_eq!(last["cursor"], connection["pageInfo"]["endCursor"]);
    }
    edges
        .iter()
        .map(|edge| edge["node"]["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Pages through the connection forwards, 3 posts a page; returns the ids in order.
async fn forwards(graphql: &testing::TestService, author: Option<i64>) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let author = author.map_or(Value::Null, |id| json!(id.to_string()));
    for page in 0.. {
        let data = graphql
            .data(
                FORWARDS,
                json!({"first": 3, "after": after, "author": author}),
            )
            .await;
        let connection = &data["postsConnection"];
        assert!(ids(connection).len() <= 3, "{connection}");
        seen.extend(ids(connection));
        let info = &connection["pageInfo"];
        assert_eq!(info["hasPreviousPage"], json!(page > 0), "{info}");
        if info["hasNextPage"] != json!(true) {
            break;
        }
        after = info["endCursor"].clone();
    }
    seen
}

/// Pages through the connection backwards from its end, 3 posts a page; returns the ids in
/// order.
async fn backwards(graphql: &testing::TestService, author: Option<i64>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut before = Value::Null;
    let author = author.map_or(Value::Null, |id| json!(id.to_string()));
    for page in 0.. {
        let data = graphql
            .data(
                BACKWARDS,
                json!({"last": 3, "before": before, "author": author}),
            )
            .await;
        let connection = &data["postsConnection"];
        let mut page_ids = ids(connection);
        assert!(page_ids.len() <= 3, "{connection}");
        page_ids.extend(seen);
        seen = page_ids;
        let info = &connection["pageInfo"];
        assert_eq!(info["hasNextPage"], json!(page > 0), "{info}");
        if info["hasPreviousPage"] != json!(true) {
            break;
        }
        before = info["startCursor"].clone();
    }
    seen
}

async fn every_post_once_forwards_and_backwards(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let graphql = &platform.graphql;
    let ann = create_user(&platform.users, "Ann", "ann@example.com").await;
    let bob = create_user(&platform.users, "Bob", "bob@example.com").await;
    let mut all = Vec::new();
    let mut anns = Vec::new();
    for n in 0..8 {
        let author = if n % 3 == 0 { bob } else { ann };
        let post = create_post(graphql, &format!("Post {n}"), author).await;
        let id = post["id"].as_str().expect("id").to_owned();
        if author == ann {
            anns.push(id.clone());
        }
        all.push(id);
    }
    assert_eq!(forwards(graphql, None).await, all, "forwards, each once");
    assert_eq!(backwards(graphql, None).await, all, "backwards, each once");
    assert_eq!(forwards(graphql, Some(ann)).await, anns, "Ann's, forwards");
    assert_eq!(
        backwards(graphql, Some(ann)).await,
        anns,
        "Ann's, backwards"
    );

    // The default page, authors answered, and an empty page past the end.
    let data = graphql
        .data(
            "{ postsConnection { edges { node { title author { name } } } \
               pageInfo { hasNextPage endCursor } } }",
            json!({}),
        )
        .await;
    let edges = data["postsConnection"]["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 8);
    assert_eq!(edges[0]["node"]["author"]["name"], "Bob");
    assert_eq!(edges[1]["node"]["author"]["name"], "Ann");
    assert_eq!(data["postsConnection"]["pageInfo"]["hasNextPage"], false);
    let end = data["postsConnection"]["pageInfo"]["endCursor"].clone();
    let data = graphql
        .data(FORWARDS, json!({"first": 5, "after": end}))
        .await;
    // Past the end: no edges, and the posts before the cursor are still there.
    assert_eq!(
        data["postsConnection"],
        json!({"edges": [], "pageInfo": {"hasNextPage": false, "hasPreviousPage": true,
               "startCursor": null, "endCursor": null}})
    );
    let data = graphql
        .data(FORWARDS, json!({"first": 0, "author": bob.to_string()}))
        .await;
    assert_eq!(data["postsConnection"]["edges"], json!([]));
}

#[tokio::test]
async fn hostile_arguments_are_bad_user_input() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let posts_cursor = encode_cursor("posts", 1);
    let users_cursor = encode_cursor("users", 1);
    for (query, variables) in [
        (
            "{ postsConnection(first: -1) { edges { cursor } } }",
            json!({}),
        ),
        (
            "{ postsConnection(first: 1001) { edges { cursor } } }",
            json!({}),
        ),
        (
            "{ postsConnection(first: 2147483647) { edges { cursor } } }",
            json!({}),
        ),
        (
            "{ postsConnection(last: -3) { edges { cursor } } }",
            json!({}),
        ),
        (
            "{ postsConnection(first: 1, last: 1) { edges { cursor } } }",
            json!({}),
        ),
        (
            "query($c: String) { postsConnection(first: 1, before: $c) { edges { cursor } } }",
            json!({"c": posts_cursor}),
        ),
        (
            "query($c: String) { postsConnection(last: 1, after: $c) { edges { cursor } } }",
            json!({"c": posts_cursor}),
        ),
        (
            "query($c: String) { postsConnection(after: $c, before: $c) { edges { cursor } } }",
            json!({"c": posts_cursor}),
        ),
        (
            "query($c: String) { postsConnection(after: $c) { edges { cursor } } }",
            json!({"c": "not a cursor"}),
        ),
        (
            "query($c: String) { postsConnection(after: $c) { edges { cursor } } }",
            json!({"c": users_cursor}),
        ),
        (
            "query($c: String) { postsConnection(before: $c) { edges { cursor } } }",
            json!({"c": "x".repeat(10_000)}),
        ),
        (
            r#"{ postsConnection(authorId: "x") { edges { cursor } } }"#,
            json!({}),
        ),
        ("{ posts(offset: 10001) { id } }", json!({})),
        ("{ posts(limit: 1001) { id } }", json!({})),
    ] {
        let body = platform.graphql.graphql(query, variables.clone()).await;
        assert_eq!(
            first_error_code(&body),
            "BAD_USER_INPUT",
            "{query} {variables}: {body}"
        );
        assert!(body["data"].is_null(), "{body}");
    }
    let body = platform
        .graphql
        .graphql(
            "query($c: String) { postsConnection(after: $c) { edges { cursor } } }",
            json!({"c": "bogus"}),
        )
        .await;
    let message = body["errors"][0]["message"].as_str().expect("a message");
    assert!(
        message.contains("after") && message.contains("not a cursor"),
        "{message}"
    );
    // The deepest offset page still answers.
    platform
        .graphql
        .data("{ posts(offset: 10000) { id } }", json!({}))
        .await;
}

#[tokio::test]
async fn the_connection_costs_its_page_times_its_nodes() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    for query in [
        "{ postsConnection(first: 1000) { edges { node { author { posts(limit: 1000) { id } } } } } }",
        "{ postsConnection(last: 1000) { edges { node { author { posts(limit: 1000) { id } } } } } }",
        "{ postsConnection { edges { node { author { posts(limit: 1000) { author { posts(limit: 1000) { id } } } } } } } }",
    ] {
        let body = platform.graphql.graphql(query, json!({})).await;
        assert_eq!(
            first_error_code(&body),
            "QUERY_TOO_COMPLEX",
            "{query}: {body}"
        );
        assert!(body["data"].is_null(), "{body}");
    }
    platform
        .graphql
        .data(
            "{ postsConnection(first: 100) { edges { node { author { posts(limit: 5) { id } } } } \
               pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
}

/// `sql` with each `$n` replaced by `values[n - 1]` (the highest first, so `$1` never eats
/// `$10`'s digits).
fn with_literals(sql: &str, values: &[i64]) -> String {
    let mut sql = sql.to_owned();
    for (index, value) in values.iter().enumerate().rev() {
        sql = sql.replace(&format!("${}", index + 1), &value.to_string());
    }
    sql
}

#[tokio::test]
async fn every_posts_list_reads_an_index_in_order_on_postgres() {
    testing::skip_unless!(Postgres);
    let url = fresh_database(TestBackend::Postgres)
        .await
        .expect("a database");
    let database = Database::connect(&url, graphql_service::migrations())
        .await
        .expect("migrated");
    // Many authors of a few posts each: walking the primary key to find one author's page
    // would read most of the table, so the planner's choice shows what the indexes allow.
    sqlx::query(
        "INSERT INTO posts (title, content, author_id, created_at) \
         SELECT 'Post ' || n, 'text', n % 500, '2026-12-04T00:00:00Z' \
         FROM generate_series(1, 5000) AS n",
    )
    .execute(database.pool())
    .await
    .expect("posts");
    sqlx::query("ANALYZE posts")
        .execute(database.pool())
        .await
        .expect("ANALYZE");
    let keyset = |seek, author: Option<i64>| {
        let (sql, binds) = page_sql(ListPage { limit: 20, seek }, author);
        let values: Vec<i64> = author.into_iter().chain(binds).collect();
        with_literals(&sql, &values)
    };
    for (what, sql) in [
        ("the offset page", with_literals(LIST_SQL, &[100, 200])),
        (
            "an author's offset page",
            with_literals(LIST_BY_AUTHOR_SQL, &[7, 100, 200]),
        ),
        ("the connection's first page", keyset(Seek::Start, None)),
        ("a page after a cursor", keyset(Seek::After(2500), None)),
        ("a page before a cursor", keyset(Seek::Before(2500), None)),
        ("the last page", keyset(Seek::End, None)),
        ("an author's first page", keyset(Seek::Start, Some(7))),
        (
            "an author's page after a cursor",
            keyset(Seek::After(2500), Some(7)),
        ),
        (
            "an author's page before a cursor",
            keyset(Seek::Before(2500), Some(7)),
        ),
        ("an author's last page", keyset(Seek::End, Some(7))),
        (
            "User.posts for a page of users",
            with_literals(&by_authors_sql(3), &[20, 0, 7, 8, 9]),
        ),
        (
            "whether any post exists",
            "SELECT id FROM posts LIMIT 1".to_owned(),
        ),
    ] {
        if sql.contains("author_id = ") {
            // By author: the author is a bound of the (author_id, id) index, not a filter.
            assert_index_plan_uses(&database, what, &sql, "posts_author_id_id").await;
        } else {
            assert_index_plan(&database, what, &sql).await;
        }
    }
}
