//! Spawning users-service the way the binary does, on a free port and a fresh database.

use reqwest::Response;
use runtime::{DatabaseUrl, test_logger};
use serde_json::{Value, json};
use server::ServiceSettings;
use testing::{TestBackend, TestService, admin_token, fresh_database, service_settings, test_keys};
use users_service::{Application, DEFAULT_PORT, IdentityOptions, NAME};

/// The user id of the admin whose token the test client sends by default (no such row: the
/// token alone makes an admin).
pub const TEST_ADMIN_ID: i64 = 1_000_000;

/// A running users-service.
pub type TestApp = TestService;

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

/// users-service with these settings, logging to `logger`. Its client sends an admin's token;
/// the identity tests use clients of their own.
pub async fn spawn_logging_to(settings: ServiceSettings, logger: slog::Logger) -> TestApp {
    spawn_with_identity(settings, IdentityOptions::new(test_keys()), logger).await
}

/// users-service with these identity options (the test keys sign unless they say otherwise).
pub async fn spawn_with_identity(
    settings: ServiceSettings,
    identity: IdentityOptions,
    logger: slog::Logger,
) -> TestApp {
    TestService::start(settings, logger, move |settings, logger| {
        Application::build(settings, identity, logger)
    })
    .await
    .with_token(&admin_token(TEST_ADMIN_ID))
}

/// The users API calls the tests make.
#[allow(async_fn_in_trait)]
pub trait UsersApi {
    /// `POST /api/users` with a JSON body.
    async fn post_user(&self, body: Value) -> Response;

    /// Creates a user and returns its JSON.
    async fn create_user(&self, name: &str, email: &str) -> Value;
}

impl UsersApi for TestService {
    async fn post_user(&self, body: Value) -> Response {
        self.post_json("/api/users", body).await
    }

    async fn create_user(&self, name: &str, email: &str) -> Value {
        let response = self.post_user(json!({"name": name, "email": email})).await;
        assert_eq!(response.status(), 201, "creating {email}");
        response.json().await.expect("user JSON")
    }
}
