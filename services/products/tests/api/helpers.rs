//! Spawning products-service the way the binary does, on a free port and a fresh database.

use products_service::{Application, DEFAULT_PORT, NAME};
use reqwest::Response;
use serde_json::{Value, json};
use shared::{
    config::DatabaseUrl,
    server::ServiceSettings,
    telemetry::test_logger,
    testing::{TestBackend, TestService, fresh_database, service_settings},
};

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
    /// `POST /api/products` with a JSON body.
    async fn post_product(&self, body: Value) -> Response;

    /// Creates a product and returns its JSON.
    async fn create_product(&self, name: &str, price: Value) -> Value;
}

impl ProductsApi for TestService {
    async fn post_product(&self, body: Value) -> Response {
        self.post_json("/api/products", body).await
    }

    async fn create_product(&self, name: &str, price: Value) -> Value {
        let response = self
            .post_product(json!({"name": name, "price": price}))
            .await;
        assert_eq!(response.status(), 201, "creating {name}");
        response.json().await.expect("product JSON")
    }
}
