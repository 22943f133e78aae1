//! `users-service`: see the library's documentation.

use runtime::Service;
use users_service::{Application, Config, DEFAULT_PORT, IdentityOptions, NAME};

/// The binary allocates through mimalloc: per-request allocations are a measurable share of a
/// server's time under glibc's allocator (docs/benchmarks.md, "What the users-service profile showed").
#[global_allocator]
static GLOBAL_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = runtime::parse_args();
    let (identity_args, auth_args) = (config.identity.clone(), config.common.auth.clone());
    server::run_binary(
        NAME,
        DEFAULT_PORT,
        &config.common,
        |mut settings, logger| async move {
            let identity = IdentityOptions::from_args(&identity_args, &auth_args, "data".as_ref())?;
            // This process holds the keys: it checks tokens against them, not over HTTP.
            settings.verifier = identity.verifier();
            Application::build(settings, identity, logger)
                .await?
                .run_until_stopped(runtime::shutdown_signal())
                .await
        },
    )
    .await
}
