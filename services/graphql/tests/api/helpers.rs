//! Spawning graphql-service the way the binary does, in front of a real users-service and
//! products-service, each on a free port and a fresh database.

use std::time::Duration;

use graphql_service::{Application, DEFAULT_PORT, NAME, Settings};
use reqwest::Response;
use runtime::{DatabaseUrl, test_logger};
use serde_json::{Value, json};
use testing::{TestBackend, TestService, fresh_database, service_settings};

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
        build_users,
    )
    .await
}

/// users-service's `Application::build`, signing with the tests' keys.
pub async fn build_users(
    settings: server::ServiceSettings,
    logger: slog::Logger,
) -> anyhow::Result<users_service::Application> {
    let identity = users_service::IdentityOptions::new(testing::test_keys());
    users_service::Application::build(settings, identity, logger).await
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
        settings.service.cache.redis_url = Some(testing::redis_url());
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

/// The id of the admin whose token [`admin`] gives: no row of users-service has it.
pub const ADMIN_ID: i64 = 900_000;

/// An admin's bearer token (user [`ADMIN_ID`]).
pub fn admin() -> String {
    testing::admin_token(ADMIN_ID)
}

/// User `id`'s bearer token (role `user`).
pub fn user(id: i64) -> String {
    testing::user_token(id)
}

/// The GraphQL calls the tests make, anonymous or with a bearer token.
#[allow(async_fn_in_trait)]
pub trait GraphqlApi {
    /// POSTs a query with variables, with `Authorization: Bearer <token>` when given; returns
    /// the whole response.
    async fn post_graphql_as(&self, token: Option<&str>, query: &str, variables: Value)
    -> Response;

    /// POSTs a query as `token`'s caller and returns its JSON body, asserting a 200.
    async fn graphql_as(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let response = self.post_graphql_as(token, query, variables).await;
        assert_eq!(response.status(), 200, "POST /graphql");
        response.json().await.expect("a JSON GraphQL response")
    }

    /// POSTs a query anonymously and returns its JSON body, asserting a 200.
    async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_as(None, query, variables).await
    }

    /// POSTs a query as `token`'s caller, expected to succeed; returns its `data`.
    async fn data_as(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let body = self.graphql_as(token, query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// POSTs a query anonymously, expected to succeed; returns its `data`.
    async fn data(&self, query: &str, variables: Value) -> Value {
        self.data_as(None, query, variables).await
    }
}

impl GraphqlApi for TestService {
    async fn post_graphql_as(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Response {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("POST /graphql")
    }
}

/// The `extensions.code` of the first error of a GraphQL response body.
pub fn first_error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// Creates a user through users-service's REST API, as an admin; returns its id.
pub async fn create_user(users: &TestService, name: &str, email: &str) -> i64 {
    let response = users
        .client
        .post(users.url("/api/users"))
        .bearer_auth(admin())
        .json(&json!({"name": name, "email": email}))
        .send()
        .await
        .expect("POST /api/users");
    assert_eq!(response.status(), 201, "creating {email}");
    let user: Value = response.json().await.expect("user JSON");
    user["id"].as_i64().expect("a numeric id")
}

/// Creates a post through GraphQL, signed in as its author; returns its JSON.
pub async fn create_post(graphql: &TestService, title: &str, author_id: i64) -> Value {
    graphql
        .data_as(
            Some(&user(author_id)),
            "mutation($title: String!, $author: ID!) { \
               createPost(title: $title, content: \"text\", authorId: $author) { id title authorId } }",
            json!({"title": title, "author": author_id.to_string()}),
        )
        .await["createPost"]
        .clone()
}

/// Runs `setup` then `scenario` on a runtime of a thread of their own, and fails unless the
/// scenario ends within `limit` of the setup's end. The services the setup spawns run on that
/// runtime too, so a request that pins their thread fails the test instead of hanging it (the
/// pinned thread is left behind; the test binary ends without it).
pub fn answers_within<S, Setup, Scenario>(
    limit: Duration,
    setup: impl FnOnce() -> Setup + Send + 'static,
    scenario: impl FnOnce(S) -> Scenario + Send + 'static,
) where
    Setup: Future<Output = S>,
    Scenario: Future<Output = ()>,
{
    let (progress, reports) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let state = setup().await;
            let _ = progress.send("set up");
            scenario(state).await;
            let _ = progress.send("answered");
        });
    });
    assert_eq!(
        reports.recv_timeout(Duration::from_secs(120)),
        Ok("set up"),
        "the setup ends (a panic of it is printed above)"
    );
    assert_eq!(
        reports.recv_timeout(limit),
        Ok("answered"),
        "every request is answered within {limit:?} (a panic of the scenario is printed above)"
    );
}
