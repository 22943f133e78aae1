//! `/readyz` and pub/sub: an instance whose Redis is cut keeps serving queries and mutations
//! (a `postCreated` it cannot publish is logged), so it reports `degraded` with 200, not 503.

use serde_json::{Value, json};
use testing::{TcpSwitch, TestBackend, fresh_database, redis_url};

use crate::helpers::{
    GraphqlApi, create_user, graphql_settings, spawn_graphql, spawn_products, spawn_users,
};

async fn readyz(graphql: &testing::TestService) -> (u16, Value) {
    let response = graphql
        .client
        .get(graphql.url("/readyz"))
        .send()
        .await
        .expect("GET /readyz");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON /readyz body"))
}

#[tokio::test]
async fn unreachable_pubsub_leaves_the_instance_degraded_and_serving() {
    testing::skip_unless!(Redis);
    let users = spawn_users(TestBackend::Sqlite).await;
    let products = spawn_products(TestBackend::Sqlite).await;
    let (switch, relayed) = TcpSwitch::for_url(&redis_url()).await;
    let mut settings = graphql_settings(
        fresh_database(TestBackend::Sqlite).await.expect("database"),
        &users.url(""),
        &products.url(""),
    );
    settings.service.cache.redis_url = Some(relayed);
    let graphql = spawn_graphql(settings).await;
    let (status, body) = readyz(&graphql).await;
    assert_eq!((status, &body["status"]), (200, &json!("ready")), "{body}");

    switch.cut();
    let (status, body) = readyz(&graphql).await;
    assert_eq!(
        status, 200,
        "a Redis blip keeps the instance in service: {body}"
    );
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(
        body["checks"]["pubsub"]
            .as_str()
            .is_some_and(|state| state.starts_with("degraded")),
        "{body}"
    );

    // Served all the same: a mutation stores its post (its announcement is only logged) and a
    // query reads it.
    let author = create_user(&users, "Ada", "ada@example.com").await;
    let created = crate::helpers::create_post(&graphql, "while Redis is away", author).await;
    let data = graphql
        .data(
            "query($id: ID!) { post(id: $id) { title author { name } } }",
            json!({"id": created["id"]}),
        )
        .await;
    assert_eq!(
        data["post"],
        json!({"title": "while Redis is away", "author": {"name": "Ada"}})
    );
}
