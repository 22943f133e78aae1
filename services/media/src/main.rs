//! `media-service`: see the library's documentation.

use media_service::{Application, Config, DEFAULT_PORT, MediaOptions, NAME};
use shared::server::Service;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = shared::config::parse();
    let options = MediaOptions::from(&config);
    shared::server::run_binary(
        NAME,
        DEFAULT_PORT,
        &config.common,
        |settings, logger| async move {
            Application::build(settings, options, logger)
                .await?
                .run_until_stopped(shared::shutdown::signal())
                .await
        },
    )
    .await
}
