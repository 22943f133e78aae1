//! `users-service`: see the library's documentation.

use shared::server::Service;
use users_service::{Application, Config, DEFAULT_PORT, IdentityOptions, NAME};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = shared::config::parse();
    let (identity_args, auth_args) = (config.identity.clone(), config.common.auth.clone());
    shared::server::run_binary(
        NAME,
        DEFAULT_PORT,
        &config.common,
        |mut settings, logger| async move {
            let identity = IdentityOptions::from_args(&identity_args, &auth_args, "data".as_ref())?;
            // This process holds the keys: it checks tokens against them, not over HTTP.
            settings.verifier = identity.verifier();
            Application::build(settings, identity, logger)
                .await?
                .run_until_stopped(shared::shutdown::signal())
                .await
        },
    )
    .await
}
