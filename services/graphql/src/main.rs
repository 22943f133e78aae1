//! `graphql-service`: see the library's documentation.

use graphql_service::{Application, Config, DEFAULT_PORT, NAME, Settings};
use shared::server::Service;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = shared::config::parse();
    let settings = Settings::from(&config);
    shared::server::run_binary(NAME, DEFAULT_PORT, &config.common, |_, logger| async move {
        Application::build(settings, logger)
            .await?
            .run_until_stopped(shared::shutdown::signal())
            .await
    })
    .await
}
