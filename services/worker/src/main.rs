//! `worker`: see the library's documentation.

use runtime::Service;
use worker::{Application, Command, Config, DEFAULT_PORT, NAME, Settings};

/// The binary allocates through mimalloc: per-request allocations are a measurable share of a
/// server's time under glibc's allocator (docs/benchmarks.md, "What the users-service profile showed").
#[global_allocator]
static GLOBAL_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = runtime::parse_args();
    match &config.command {
        Some(Command::Produce(args)) => {
            runtime::run_process(NAME, &config.common.process, |root| {
                let logger = runtime::service_logger(&root, NAME);
                async move { worker::producer::produce(&config.queue, args, logger).await }
            })
            .await
        }
        None => {
            let worker = Settings::from(&config);
            server::run_binary(
                NAME,
                DEFAULT_PORT,
                &config.common,
                |settings, logger| async move {
                    Application::build(settings, worker, logger)
                        .await?
                        .run_until_stopped(runtime::shutdown_signal())
                        .await
                },
            )
            .await
        }
    }
}
