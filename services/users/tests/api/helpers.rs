//! Spawning users-service the way the binary does, on a free port and a fresh database.

use std::ops::Deref;

use reqwest::Response;
use serde_json::{Value, json};
use shared::{
    config::DatabaseUrl,
    server::ServiceSettings,
    telemetry::test_logger,
    testing::{TestBackend, TestServer, fresh_database, service_settings},
};
use users_service::{Application, DEFAULT_PORT, NAME};

/// A running users-service.
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

/// users-service on a fresh database of `backend`.
pub async fn spawn_app(backend: TestBackend) -> TestApp {
    let database_url = fresh_database(backend)
        .await
        .expect("a fresh test database");
    spawn_with(test_settings(database_url)).await
}

/// users-service with these settings.
pub async fn spawn_with(settings: ServiceSettings) -> TestApp {
    spawn_logging_to(settings, test_logger(NAME)).await
}

/// users-service with these settings, logging to `logger`.
pub async fn spawn_logging_to(settings: ServiceSettings, logger: slog::Logger) -> TestApp {
    let app = Application::build(settings.clone(), logger)
        .await
        .expect("users-service builds");
    let port = app.port();
    let server = TestServer::start(port, |shutdown| app.run_until_stopped(shutdown));
    TestApp { server, settings }
}

impl TestApp {
    /// `POST /api/users` with a JSON body.
    pub async fn post_user(&self, body: Value) -> Response {
        self.post_json("/api/users", body).await
    }

    /// Creates a user and returns its JSON.
    pub async fn create_user(&self, name: &str, email: &str) -> Value {
        let response = self.post_user(json!({"name": name, "email": email})).await;
        assert_eq!(response.status(), 201, "creating {email}");
        response.json().await.expect("user JSON")
    }
}
