//! Spawning products-service the way the binary does, on a free port and a fresh database.

use std::ops::Deref;

use products_service::{Application, DEFAULT_PORT, NAME};
use reqwest::Response;
use serde_json::{Value, json};
use shared::{
    config::DatabaseUrl,
    server::ServiceSettings,
    telemetry::test_logger,
    testing::{TestBackend, TestServer, fresh_database, service_settings},
};

/// A running products-service.
pub struct TestApp {
    /// The server and its client.
    pub server: TestServer,
    /// What it was started with (to start it again on the same database).
    pub settings: ServiceSettings,
}

impl Deref for TestApp {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

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
    let app = Application::build(settings.clone(), test_logger(NAME))
        .await
        .expect("products-service builds");
    let port = app.port();
    let server = TestServer::start(port, |shutdown| app.run_until_stopped(shutdown));
    TestApp { server, settings }
}

impl TestApp {
    /// `POST /api/products` with a JSON body.
    pub async fn post_product(&self, body: Value) -> Response {
        self.post_json("/api/products", body).await
    }

    /// Creates a product and returns its JSON.
    pub async fn create_product(&self, name: &str, price: Value) -> Value {
        let response = self
            .post_product(json!({"name": name, "price": price}))
            .await;
        assert_eq!(response.status(), 201, "creating {name}");
        response.json().await.expect("product JSON")
    }
}
