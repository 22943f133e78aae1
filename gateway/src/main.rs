//! `gateway`: see the library's documentation.

use runtime::Service;

/// The binary allocates through mimalloc: per-request allocations are a measurable share of a
/// server's time under glibc's allocator (docs/benchmarks.md, "What the users-service profile showed").
#[global_allocator]
static GLOBAL_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use gateway::{Gateway, config::Args};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Args = runtime::parse_args();
    if args.healthcheck {
        return runtime::probe(args.port);
    }
    let config = match args.gateway_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let address = std::net::SocketAddr::new(args.process.bind, args.port);
    let verifier = args.auth.remote_verifier();
    runtime::run_process("gateway", &args.process, |root| async move {
        let logger = runtime::service_logger(&root, "gateway");
        Gateway::build(config, address, logger, verifier)?
            .run_until_stopped(runtime::shutdown_signal())
            .await
    })
    .await
}
