//! `media-service`: see the library's documentation.

use media_service::{Application, Config, DEFAULT_PORT, NAME, Settings};
use shared::server::Service;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = shared::config::parse();
    let settings = Settings::from(&config);
    shared::server::run_binary(
        NAME,
        DEFAULT_PORT,
        &config.common,
        |service, logger| async move {
            Application::build(service, settings, logger)
                .await?
                .run_until_stopped(shared::shutdown::signal())
                .await
        },
    )
    .await
}
