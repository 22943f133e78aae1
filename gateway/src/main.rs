//! `gateway`: see the library's documentation.

use shared::server::Service;

use gateway::{Gateway, config::Args};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Args = shared::config::parse();
    if args.healthcheck {
        return shared::health::probe(args.port);
    }
    let config = match args.gateway_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: GATEWAY_CONFIG (--config): {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let address = std::net::SocketAddr::new(args.process.bind, args.port);
    let verifier = args.auth.remote_verifier();
    shared::server::run_process("gateway", &args.process, |root| async move {
        let logger = shared::telemetry::for_service(&root, "gateway");
        Gateway::build(config, address, logger, verifier)?
            .run_until_stopped(shared::shutdown::signal())
            .await
    })
    .await
}
