//! `stack`: see the library's documentation.

use stack::{Config, Stack};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = shared::config::parse();
    let settings = config.settings();
    let bind = config.process.bind;
    shared::server::run_process("stack", &config.process, |root| async move {
        let stack = Stack::build(settings, &root).await?;
        eprintln!("\nThe platform is up (Ctrl-C stops it):");
        for endpoint in stack.endpoints(&bind.to_string()) {
            eprintln!("  {:<10} {}", endpoint.service, endpoint.url);
        }
        eprintln!();
        stack.run_until_stopped(shared::shutdown::signal()).await
    })
    .await
}
