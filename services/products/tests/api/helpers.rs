//! Spawning products-service the way the binary does, on a free port and a fresh database.

use products_service::{Application, DEFAULT_PORT, NAME};
use reqwest::{Method, Response};
use runtime::{DatabaseUrl, test_logger};
use serde_json::{Value, json};
use server::ServiceSettings;
use testing::{TestBackend, TestService, fresh_database, service_settings};

pub use testing::Who;

/// The admin the tests write as.
pub const ADMIN: Who = Who::Admin(1);

/// A running products-service.
pub type TestApp = TestService;

/// Settings for a test instance on `database_url`: port 0, one worker, its own cache keys.
pub fn test_settings(database_url: DatabaseUrl) -> ServiceSettings {
    service_settings(NAME, DEFAULT_PORT, database_url)
}

/// products-service on a fresh database of `backend`.
pub async fn spawn_app(backend: TestBackend) -> TestApp {
    let database_url = fresh_database(backend)
        .await
        .expect("a fresh test database");
    spawn_with(test_settings(database_url)).await
}

/// products-service with these settings.
pub async fn spawn_with(settings: ServiceSettings) -> TestApp {
    spawn_logging_to(settings, test_logger(NAME)).await
}

/// products-service with these settings, logging to `logger`.
pub async fn spawn_logging_to(settings: ServiceSettings, logger: slog::Logger) -> TestApp {
    TestService::start(settings, logger, Application::build).await
}

/// The products API calls the tests make.
#[allow(async_fn_in_trait)]
pub trait ProductsApi {
    /// A request as `who`, with a JSON body when there is one.
    async fn send_as(&self, who: Who, method: Method, path: &str, body: Option<&Value>)
    -> Response;

    /// `POST /api/products` with a JSON body, as the admin.
    async fn post_product(&self, body: Value) -> Response;

    /// `PUT` of a JSON body, as the admin.
    async fn put_admin(&self, path: &str, body: &Value) -> Response;

    /// `DELETE`, as the admin.
    async fn delete_admin(&self, path: &str) -> Response;

    /// Creates a product and returns its JSON.
    async fn create_product(&self, name: &str, price: Value) -> Value;
}

impl ProductsApi for TestService {
    async fn send_as(
        &self,
        who: Who,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = who.token() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("a response")
    }

    async fn post_product(&self, body: Value) -> Response {
        self.send_as(ADMIN, Method::POST, "/api/products", Some(&body))
            .await
    }

    async fn put_admin(&self, path: &str, body: &Value) -> Response {
        self.send_as(ADMIN, Method::PUT, path, Some(body)).await
    }

    async fn delete_admin(&self, path: &str) -> Response {
        self.send_as(ADMIN, Method::DELETE, path, None).await
    }

    async fn create_product(&self, name: &str, price: Value) -> Value {
        let response = self
            .post_product(json!({"name": name, "price": price}))
            .await;
        assert_eq!(response.status(), 201, "creating {name}");
        response.json().await.expect("product JSON")
    }
}
