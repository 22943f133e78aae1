//! `chat-service`: see the library's documentation.

use chat_service::{Application, Config, DEFAULT_PORT, NAME, Settings};
use shared::server::Service;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = shared::config::parse();
    let chat = Settings::from(&config);
    shared::server::run_binary(
        NAME,
        DEFAULT_PORT,
        &config.common,
        |settings, logger| async move {
            Application::build_with(settings, chat, logger)
                .await?
                .run_until_stopped(shared::shutdown::signal())
                .await
        },
    )
    .await
}
