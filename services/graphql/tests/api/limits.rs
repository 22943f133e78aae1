//! What an operation may cost (docs/contracts.md, "GraphQL"): each limit refuses with its
//! `extensions.code`, the static ones before anything runs; graphql-js's introspection query
//! passes them, its cost apart from the data's, and an introspection bomb is refused;
//! `operationName` picks the operation measured and run; fragments that multiply, name no
//! fragment or spread themselves are refused at once.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use testing::{TestBackend, TestService, fresh_database};

use crate::{
    helpers::{
        GraphqlApi, TestPlatform, answers_within, create_post, create_user, graphql_settings,
        spawn_graphql,
    },
    introspection_query,
};

/// Every `extensions.code` of a response body.
fn codes(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|error| error["extensions"]["code"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// `graphql_sql_queries_total` of every query kind, summed.
async fn sql_statements(graphql: &TestService) -> f64 {
    let mut total = 0.0;
    for query in ["list", "find", "by_authors"] {
        total += graphql
            .metric("graphql_sql_queries_total", &[("query", query)])
            .await;
    }
    total
}

/// Calls graphql-service made to `service`, whatever their outcome.
async fn upstream_calls(graphql: &TestService, service: &str) -> f64 {
    let mut total = 0.0;
    for outcome in ["ok", "rejected", "error", "timeout"] {
        total += graphql
            .metric(
                "graphql_upstream_requests_total",
                &[("upstream", service), ("outcome", outcome)],
            )
            .await;
    }
    total
}

/// The alias bomb of docs/architecture.md: `n` aliases of posts → author → posts … as deep as
/// the depth limit allows.
fn alias_bomb(aliases: usize) -> String {
    let nested = "posts { author { posts { author { posts { author { posts { author { posts { id } } } } } } } } }";
    let fields: String = (0..aliases).map(|i| format!("a{i}: {nested} ")).collect();
    format!("{{ {fields}}}")
}

#[tokio::test]
async fn lists_cost_their_page_size_and_refused_queries_run_nothing() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let graphql = &platform.graphql;
    let author = create_user(&platform.users, "Ann", "ann@example.com").await;
    create_post(graphql, "First", author).await;

    let before = sql_statements(graphql).await;
    let calls_before = upstream_calls(graphql, "users").await;
    for query in [
        alias_bomb(10),
        alias_bomb(1),
        "{ users(limit: 1000) { posts(limit: 1000) { id } } }".to_owned(),
        "{ posts(limit: 1000) { author { posts(limit: 1000) { id } } } }".to_owned(),
        "query($n: Int) { users(limit: $n) { posts(limit: $n) { id } } }".to_owned(),
    ] {
        let body = graphql.graphql(&query, json!({"n": 500})).await;
        assert_eq!(codes(&body), ["QUERY_TOO_COMPLEX"], "{query}: {body}");
        assert!(body["data"].is_null(), "{body}");
    }
    assert_eq!(sql_statements(graphql).await, before, "nothing ran");
    assert_eq!(upstream_calls(graphql, "users").await, calls_before);

    // The README's queries, on default pages, pass.
    for query in [
        "{ users { name posts { title } } }",
        "{ posts { title author { name } } }",
        "{ users { id name } posts { id title } products { id name } }",
        "{ posts(limit: 2) { author { posts(limit: 2) { author { name } } } } }",
    ] {
        graphql.data(query, json!({})).await;
    }
    let data = graphql
        .data(
            "{ users { posts(limit: 1) { title } more: posts(offset: 1) { title } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["users"],
        json!([{"posts": [{"title": "First"}], "more": []}])
    );
}

#[tokio::test]
async fn aliases_and_root_fields_are_capped_before_anything_runs() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let graphql = &platform.graphql;
    let calls_before = upstream_calls(graphql, "users").await;

    // The users bomb: 300 aliases of users(limit: 1000).
    let bomb: String = (0..300)
        .map(|i| format!("u{i}: users(limit: 1000) {{ id }} "))
        .collect();
    let body = graphql.graphql(&format!("{{ {bomb}}}"), json!({})).await;
    assert_eq!(codes(&body), ["TOO_MANY_ALIASES"], "{body}");
    assert_eq!(
        upstream_calls(graphql, "users").await,
        calls_before,
        "no call to users-service"
    );

    // 31 aliases: at the root, inside a field, and through a fragment spread twice.
    let aliases =
        |count: usize| -> String { (0..count).map(|i| format!("t{i}: title ")).collect() };
    let sixteen = aliases(16);
    for query in [
        format!(
            "{{ {} }}",
            (0..31)
                .map(|i| format!("p{i}: post(id: 1) {{ id }} "))
                .collect::<String>()
        ),
        format!("{{ posts {{ {} }} }}", aliases(31)),
        format!("{{ posts {{ ...F ...F }} }} fragment F on Post {{ {sixteen}}}"),
    ] {
        let body = graphql.graphql(&query, json!({})).await;
        assert_eq!(codes(&body), ["TOO_MANY_ALIASES"], "{body}");
    }
    // 30 aliases pass.
    graphql
        .data(&format!("{{ posts {{ {} }} }}", aliases(30)), json!({}))
        .await;

    // 21 root fields without an alias.
    let root: String = "post(id: 1) { id } ".repeat(21);
    let body = graphql.graphql(&format!("{{ {root}}}"), json!({})).await;
    assert_eq!(codes(&body), ["TOO_MANY_ROOT_FIELDS"], "{body}");
    let root: String = "post(id: 1) { id } ".repeat(20);
    graphql.data(&format!("{{ {root}}}"), json!({})).await;
}

#[tokio::test]
async fn data_depth_is_limited_and_introspection_nests_apart() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let graphql = &platform.graphql;
    let deep = "{ posts(limit: 1) { author { posts(limit: 1) { author { posts(limit: 1) { author { posts(limit: 1) { author { posts(limit: 1) { author { name } } } } } } } } } } }";
    let body = graphql.graphql(deep, json!({})).await;
    assert_eq!(codes(&body), ["QUERY_TOO_DEEP"], "{body}");

    // graphql-js's introspection query nests 15 deep; with its data beside it, the data is
    // measured alone.
    for (query, operation) in [
        (introspection_query::DEFAULT, "IntrospectionQuery"),
        (introspection_query::EVERY_OPTION, "IntrospectionQuery"),
    ] {
        let response = graphql
            .client
            .post(graphql.url("/graphql"))
            .json(&json!({"query": query, "operationName": operation}))
            .send()
            .await
            .expect("POST /graphql");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("JSON");
        assert!(body.get("errors").is_none(), "{body}");
        let types = body["data"]["__schema"]["types"]
            .as_array()
            .expect("the schema's types");
        assert!(types.iter().any(|ty| ty["name"] == "Post"), "{body}");
    }
    let mixed = "{ posts(limit: 1) { author { posts(limit: 1) { author { posts(limit: 1) { author { posts(limit: 1) { author { posts(limit: 1) { id } } } } } } } } } \
                   __schema { types { fields { type { ofType { ofType { ofType { ofType { name } } } } } } } } }";
    graphql.data(mixed, json!({})).await;
    // Introspection has a depth of its own.
    let endless = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "fields { type { ".repeat(10),
        " } }".repeat(10)
    );
    let body = graphql.graphql(&endless, json!({})).await;
    assert_eq!(codes(&body), ["QUERY_TOO_DEEP"], "{body}");
}

/// graphql-js's fragments of its introspection query (`FullType`, `InputValue`, `TypeRef`):
/// `types { ...FullType }` costs 172 fields.
fn introspection_fragments() -> &'static str {
    let query = introspection_query::DEFAULT;
    &query[query
        .find("fragment FullType")
        .expect("the FullType fragment")..]
}

#[tokio::test]
async fn introspection_costs_apart_from_the_data() {
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    // Introspection and posts call neither users-service nor products-service.
    let mut settings = graphql_settings(database, "http://127.0.0.1:9", "http://127.0.0.1:9");
    settings.limits.max_complexity = 50;
    let graphql = spawn_graphql(settings).await;

    // graphql-js's introspection queries cost 220 and 230 fields: they pass whatever the data's
    // limit, alone or beside data within it (`posts(limit: 49) { id }` costs 50).
    for query in [
        introspection_query::DEFAULT.to_owned(),
        introspection_query::EVERY_OPTION.to_owned(),
        format!(
            "{{ posts(limit: 49) {{ id }} __typename __schema {{ types {{ ...FullType }} }} }} {}",
            introspection_fragments()
        ),
    ] {
        let body = graphql.graphql(&query, json!({})).await;
        assert!(body.get("errors").is_none(), "{query}: {body}");
        assert!(body["data"]["__schema"]["types"].is_array(), "{body}");
    }

    // Data over its limit is refused with introspection beside it: 51 fields counted in the
    // document, and `posts(limit: 25) { id title }` (1 + 25 × 2) counted by its page, with
    // `__typename`s under `__schema` too (they cost nothing, so they take nothing off).
    for query in [
        format!(
            "{{ post(id: 1) {{ {} }} __schema {{ types {{ name }} }} }}",
            "id ".repeat(50)
        ),
        "{ posts(limit: 25) { id title } __schema { types { ...FullType } } } ".to_owned()
            + introspection_fragments(),
        format!(
            "{{ posts(limit: 25) {{ id title }} __schema {{ types {{ name }} {}}} }}",
            "__typename ".repeat(10)
        ),
    ] {
        let body = graphql.graphql(&query, json!({})).await;
        assert_eq!(codes(&body), ["QUERY_TOO_COMPLEX"], "{query}: {body}");
        assert!(body["data"].is_null(), "{body}");
    }
}

#[tokio::test]
async fn an_introspection_bomb_is_refused() {
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    // The default limits: the data's complexity limit (5000) would let each bomb through.
    let graphql = spawn_graphql(graphql_settings(
        database,
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
    ))
    .await;
    let fragments = introspection_fragments();
    let aliased = |count: usize| -> String {
        let schemas: String = (0..count)
            .map(|i| format!("s{i}: __schema {{ types {{ ...FullType }} }} "))
            .collect();
        format!("{{ {schemas}}} {fragments}")
    };
    // Two aliased copies of the schema's types cost 346: within the introspection budget.
    let body = graphql.graphql(&aliased(2), json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");

    for query in [
        // Three aliased copies: 519.
        aliased(3),
        // The same selection spread three times: 517.
        format!(
            "{{ __schema {{ ...S ...S ...S }} }} fragment S on __Schema {{ types {{ ...FullType }} }} {fragments}"
        ),
    ] {
        let body = graphql.graphql(&query, json!({})).await;
        assert_eq!(codes(&body), ["QUERY_TOO_COMPLEX"], "{query}: {body}");
        assert!(body["data"].is_null(), "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("introspection"), "{body}");
    }

    // Doubling fragments under `__schema`: 2^21 fields if expanded, refused from the size of
    // the document's expansion before anything is measured.
    let mut doubling = String::from("{ __schema { ...F0 } }");
    for level in 0..20 {
        doubling.push_str(&format!(
            " fragment F{level} on __Schema {{ ...F{next} ...F{next} }}",
            next = level + 1
        ));
    }
    doubling.push_str(" fragment F20 on __Schema { types { name } }");
    let body = graphql.graphql(&doubling, json!({})).await;
    assert_eq!(codes(&body), ["QUERY_TOO_COMPLEX"], "{body}");
    assert!(body["data"].is_null(), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("fragment spreads"), "{body}");
}

#[tokio::test]
async fn upstream_calls_per_operation_are_capped() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    let mut settings = graphql_settings(
        database,
        &platform.users.url(""),
        &platform.products.url(""),
    );
    settings.limits.max_upstream_calls = 3;
    let graphql = spawn_graphql(settings).await;

    let before = upstream_calls(&graphql, "products").await;
    let five: String = (0..5)
        .map(|i| format!("p{i}: products {{ id }} "))
        .collect();
    let body = graphql.graphql(&format!("{{ {five}}}"), json!({})).await;
    assert_eq!(
        upstream_calls(&graphql, "products").await - before,
        3.0,
        "three calls made, the others refused before they were sent: {body}"
    );
    assert_eq!(
        codes(&body),
        ["UPSTREAM_CALLS_EXCEEDED", "UPSTREAM_CALLS_EXCEEDED"],
        "{body}"
    );
    let answered = (0..5)
        .filter(|i| body["data"][format!("p{i}")].is_array())
        .count();
    assert_eq!(answered, 3, "{body}");
    // Each operation has its own allowance.
    let three: String = (0..3)
        .map(|i| format!("p{i}: products {{ id }} "))
        .collect();
    graphql.data(&format!("{{ {three}}}"), json!({})).await;
}

#[tokio::test]
async fn responses_over_their_bytes_are_refused_whole() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let author = create_user(&platform.users, "Bea", "bea@example.com").await;
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    let mut settings = graphql_settings(
        database,
        &platform.users.url(""),
        &platform.products.url(""),
    );
    settings.limits.max_response_bytes = 4000;
    let graphql = spawn_graphql(settings).await;
    for i in 0..5 {
        graphql
            .data_as(
                Some(&crate::helpers::user(author)),
                "mutation($t: String!, $c: String!) { createPost(title: $t, content: $c) { id } }",
                json!({"t": format!("Post {i}"), "c": "x".repeat(1000)}),
            )
            .await;
    }
    let body = graphql.graphql("{ posts { content } }", json!({})).await;
    assert_eq!(codes(&body), ["RESPONSE_TOO_LARGE"], "{body}");
    assert!(
        body.get("data").is_none() || body["data"].is_null(),
        "{body}"
    );
    let data = graphql.data("{ posts { title } }", json!({})).await;
    assert_eq!(data["posts"].as_array().map(Vec::len), Some(5));
    let data = graphql
        .data("{ posts(limit: 3) { content } }", json!({}))
        .await;
    assert_eq!(data["posts"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn operation_name_picks_the_operation_over_get_and_post() {
    let platform = TestPlatform::spawn(TestBackend::Sqlite).await;
    let graphql = &platform.graphql;
    let author = create_user(&platform.users, "Cy", "cy@example.com").await;
    create_post(graphql, "Named", author).await;
    let wide: String = (0..31)
        .map(|i| format!("p{i}: post(id: 1) {{ id }} "))
        .collect();
    let document = format!(
        "query Titles {{ posts {{ title }} }} query Ids {{ posts {{ id }} }} query Wide {{ {wide}}}"
    );

    for (operation, expected) in [
        ("Titles", json!({"posts": [{"title": "Named"}]})),
        ("Ids", json!({"posts": [{"id": "1"}]})),
    ] {
        let post = graphql
            .client
            .post(graphql.url("/graphql"))
            .json(&json!({"query": document, "operationName": operation}))
            .send()
            .await
            .expect("POST");
        let body: Value = post.json().await.expect("JSON");
        assert_eq!(body["data"], expected, "POST {operation}: {body}");
        let url = reqwest::Url::parse_with_params(
            &graphql.url("/graphql"),
            &[("query", document.as_str()), ("operationName", operation)],
        )
        .expect("a URL");
        let get = graphql
            .client
            .request(Method::GET, url)
            .send()
            .await
            .expect("GET");
        let body: Value = get.json().await.expect("JSON");
        assert_eq!(body["data"], expected, "GET {operation}: {body}");
    }
    // The operation named is the one measured.
    let body = graphql
        .client
        .post(graphql.url("/graphql"))
        .json(&json!({"query": document, "operationName": "Wide"}))
        .send()
        .await
        .expect("POST")
        .json::<Value>()
        .await
        .expect("JSON");
    assert_eq!(codes(&body), ["TOO_MANY_ALIASES"], "{body}");
    // No name for several operations: the request is refused, nothing runs.
    let body = graphql.graphql(&document, json!({})).await;
    assert!(body["data"].is_null(), "{body}");
    assert!(body["errors"][0]["message"].is_string(), "{body}");
}

/// `{ ...F0 }` and `levels` fragments, each spreading the next twice, then `last`: the
/// expansion holds 2^(levels + 1) - 1 spreads.
pub fn doubling_fragments(levels: usize, last: &str) -> String {
    let mut query = String::from("{ ...F0 }");
    for level in 0..levels {
        query.push_str(&format!(
            " fragment F{level} on Query {{ ...F{next} ...F{next} }}",
            next = level + 1
        ));
    }
    query.push_str(last);
    query
}

/// Doubling fragments 31 deep (within async-graphql's recursion depth of 32, so nothing stops
/// their expansion but the service's own check) are refused within seconds, whatever ends them:
/// a fragment the document does not define, a field (`QUERY_TOO_COMPLEX` both), or one spreading
/// the first again (validation's error, where validation reports it). A few doublings into an
/// undefined fragment get validation's errors, every one.
#[test]
fn multiplying_fragments_are_refused_before_they_are_expanded() {
    answers_within(
        Duration::from_secs(10),
        || async {
            let database = fresh_database(TestBackend::Sqlite).await.expect("database");
            spawn_graphql(graphql_settings(
                database,
                "http://127.0.0.1:9",
                "http://127.0.0.1:9",
            ))
            .await
        },
        |graphql| async move {
            for last in ["", " fragment F31 on Query { __typename }"] {
                let body = graphql
                    .graphql(&doubling_fragments(31, last), json!({}))
                    .await;
                assert_eq!(codes(&body), ["QUERY_TOO_COMPLEX"], "{body}");
                assert!(body["data"].is_null(), "{body}");
            }

            let cycle = doubling_fragments(31, " fragment F31 on Query { ...F0 }");
            let body = graphql.graphql(&cycle, json!({})).await;
            assert!(body["data"].is_null(), "{body}");
            let column = cycle.find("...F1").expect("F0 spreads F1") + 1;
            assert_eq!(
                body["errors"],
                json!([{"message": "Cannot spread fragment \"F0\"",
                        "locations": [{"line": 1, "column": column}]}]),
                "{body}"
            );

            let undefined = doubling_fragments(3, "");
            let body = graphql.graphql(&undefined, json!({})).await;
            assert!(body["data"].is_null(), "{body}");
            let spreads: Vec<Value> = undefined
                .match_indices("...F3")
                .map(|(at, _)| {
                    json!({"message": "Unknown fragment: \"F3\"",
                           "locations": [{"line": 1, "column": at + 1}]})
                })
                .collect();
            assert_eq!(spreads.len(), 2);
            assert_eq!(body["errors"], Value::Array(spreads), "{body}");

            // A few doublings still run: 2^3 `__typename`s.
            let few = doubling_fragments(3, " fragment F3 on Query { __typename }");
            let data = graphql.data(&few, json!({})).await;
            assert_eq!(data, json!({"__typename": "Query"}));
        },
    );
}
