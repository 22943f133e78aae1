//! `stack`: see the library's documentation.

use stack::{Config, Stack};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = shared::config::parse();
    shared::server::run_process("stack", &config.process, |root| async move {
        let stack = Stack::build(config.settings(), &root).await?;
        eprintln!("\nThe platform is up (Ctrl-C stops it):");
        for endpoint in stack.endpoints(&config.process.bind.to_string()) {
            eprintln!("  {:<10} {}", endpoint.service, endpoint.url);
        }
        eprintln!();
        stack.run_until_stopped(shared::shutdown::signal()).await
    })
    .await
}
