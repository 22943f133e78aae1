//! `graphql-service`: see the library's documentation.

use graphql_service::{Application, Config, DEFAULT_PORT, NAME, Settings};
use runtime::Service;

/// The binary allocates through mimalloc: per-request allocations are a measurable share of a
/// server's time under glibc's allocator (docs/benchmarks.md, "What the users-service profile showed").
#[global_allocator]
static GLOBAL_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = runtime::parse_args();
    let settings = Settings::from(&config);
    server::run_binary(NAME, DEFAULT_PORT, &config.common, |_, logger| async move {
        Application::build(settings, logger)
            .await?
            .run_until_stopped(runtime::shutdown_signal())
            .await
    })
    .await
}
