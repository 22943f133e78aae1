//! `users-service`: see the library's documentation.

use shared::server::Service;
use users_service::{Application, Config, DEFAULT_PORT, NAME};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = shared::config::parse();
    shared::server::run_binary(
        NAME,
        DEFAULT_PORT,
        &config.common,
        |settings, logger| async move {
            Application::build(settings, logger)
                .await?
                .run_until_stopped(shared::shutdown::signal())
                .await
        },
    )
    .await
}
