//! `worker`: see the library's documentation.

use shared::server::Service;
use worker::{Application, Command, Config, DEFAULT_PORT, NAME, Settings};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = shared::config::parse();
    match &config.command {
        Some(Command::Produce(args)) => {
            shared::server::run_process(NAME, &config.common.process, |root| {
                let logger = shared::telemetry::for_service(&root, NAME);
                async move { worker::producer::produce(&config.queue, args, logger).await }
            })
            .await
        }
        None => {
            let worker = Settings::from(&config);
            shared::server::run_binary(
                NAME,
                DEFAULT_PORT,
                &config.common,
                |settings, logger| async move {
                    Application::build(settings, worker, logger)
                        .await?
                        .run_until_stopped(shared::shutdown::signal())
                        .await
                },
            )
            .await
        }
    }
}
