//! Spawning graphql-service the way the binary does, in front of a real users-service and
//! products-service, each on a free port and a fresh database.

use std::time::Duration;

use graphql_service::{Application, DEFAULT_PORT, NAME, Settings};
use reqwest::Response;
use serde_json::{Value, json};
use shared::{
    config::DatabaseUrl,
    telemetry::test_logger,
    testing::{TestBackend, TestService, fresh_database, service_settings},
};

/// graphql-service and the two services it reads from.
pub struct TestPlatform {
    /// graphql-service.
    pub graphql: TestService,
    /// users-service.
    pub users: TestService,
    /// products-service.
    pub products: TestService,
}

/// A running users-service on a fresh database of `backend`.
pub async fn spawn_users(backend: TestBackend) -> TestService {
    let database = fresh_database(backend).await.expect("a users database");
    TestService::start(
        service_settings(users_service::NAME, users_service::DEFAULT_PORT, database),
        test_logger(users_service::NAME),
        users_service::Application::build,
    )
    .await
}

/// A running products-service on a fresh database of `backend`.
pub async fn spawn_products(backend: TestBackend) -> TestService {
    let database = fresh_database(backend).await.expect("a products database");
    TestService::start(
        service_settings(
            products_service::NAME,
            products_service::DEFAULT_PORT,
            database,
        ),
        test_logger(products_service::NAME),
        products_service::Application::build,
    )
    .await
}

/// Settings for graphql-service on `database`, reading from these base URLs.
pub fn graphql_settings(database: DatabaseUrl, users_url: &str, products_url: &str) -> Settings {
    let mut settings = Settings::new(
        service_settings(NAME, DEFAULT_PORT, database),
        users_url,
        products_url,
    )
    .expect("valid URLs");
    settings.events_channel = format!("test:{}:post_created", uuid::Uuid::new_v4().simple());
    settings.timeouts.request = Duration::from_secs(5);
    settings
}

/// Two graphql-service instances on one fresh PostgreSQL database and one Redis, as behind a
/// load balancer, on a pub/sub channel of their own; `configure` adjusts their settings.
pub async fn instances_over_redis(
    users_url: &str,
    products_url: &str,
    configure: impl Fn(&mut Settings),
) -> Vec<TestService> {
    let database = fresh_database(TestBackend::Postgres)
        .await
        .expect("database");
    let channel = format!("test:{}:post_created", uuid::Uuid::new_v4().simple());
    let mut instances = Vec::new();
    for _ in 0..2 {
        let mut settings = graphql_settings(database.clone(), users_url, products_url);
        settings.service.cache.redis_url = Some(shared::testing::redis_url());
        settings.events_channel = channel.clone();
        configure(&mut settings);
        instances.push(spawn_graphql(settings).await);
    }
    instances
}

/// graphql-service with these settings.
pub async fn spawn_graphql(settings: Settings) -> TestService {
    spawn_graphql_logging_to(settings, test_logger(NAME)).await
}

/// graphql-service with these settings, logging to `logger`.
pub async fn spawn_graphql_logging_to(settings: Settings, logger: slog::Logger) -> TestService {
    let service = settings.service.clone();
    TestService::start(service, logger, move |_, logger| {
        Application::build(settings, logger)
    })
    .await
}

impl TestPlatform {
    /// All three, on fresh databases of `backend`.
    pub async fn spawn(backend: TestBackend) -> Self {
        let users = spawn_users(backend).await;
        let products = spawn_products(backend).await;
        let database = fresh_database(backend).await.expect("a graphql database");
        let graphql = spawn_graphql(graphql_settings(
            database,
            &users.url(""),
            &products.url(""),
        ))
        .await;
        Self {
            graphql,
            users,
            products,
        }
    }
}

/// The GraphQL calls the tests make.
#[allow(async_fn_in_trait)]
pub trait GraphqlApi {
    /// POSTs a query with variables; returns the whole response.
    async fn post_graphql(&self, query: &str, variables: Value) -> Response;

    /// POSTs a query and returns its JSON body, asserting a 200.
    async fn graphql(&self, query: &str, variables: Value) -> Value {
        let response = self.post_graphql(query, variables).await;
        assert_eq!(response.status(), 200, "POST /graphql");
        response.json().await.expect("a JSON GraphQL response")
    }

    /// POSTs a query expected to succeed; returns its `data`.
    async fn data(&self, query: &str, variables: Value) -> Value {
        let body = self.graphql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }
}

impl GraphqlApi for TestService {
    async fn post_graphql(&self, query: &str, variables: Value) -> Response {
        self.post_json("/graphql", json!({"query": query, "variables": variables}))
            .await
    }
}

/// The `extensions.code` of the first error of a GraphQL response body.
pub fn first_error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// Creates a user through users-service's REST API; returns its id.
pub async fn create_user(users: &TestService, name: &str, email: &str) -> i64 {
    let response = users
        .post_json("/api/users", json!({"name": name, "email": email}))
        .await;
    assert_eq!(response.status(), 201, "creating {email}");
    let user: Value = response.json().await.expect("user JSON");
    user["id"].as_i64().expect("a numeric id")
}

/// Creates a post through GraphQL; returns its JSON.
pub async fn create_post(graphql: &TestService, title: &str, author_id: i64) -> Value {
    graphql
        .data(
            "mutation($title: String!, $author: ID!) { \
               createPost(title: $title, content: \"text\", authorId: $author) { id title authorId } }",
            json!({"title": title, "author": author_id.to_string()}),
        )
        .await["createPost"]
        .clone()
}
