//! `stack`: see the library's documentation.

use stack::{Config, Stack};

/// The binary allocates through mimalloc: per-request allocations are a measurable share of a
/// server's time under glibc's allocator (docs/benchmarks.md, "What the users-service profile showed").
#[global_allocator]
static GLOBAL_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = runtime::parse_args();
    let bind = config.process.bind;
    let process = config.process.clone();
    runtime::run_process("stack", &process, |root| async move {
        let stack = Stack::build(config.settings()?, &root).await?;
        eprintln!("\nThe platform is up (Ctrl-C stops it):");
        for endpoint in stack.endpoints(&bind.to_string()) {
            eprintln!("  {:<10} {}", endpoint.service, endpoint.url);
        }
        if let Some(admin) = stack.generated_admin() {
            // Shown here once, never logged; the file keeps it for the owner only.
            eprintln!(
                "\nAn admin account was created (shown once; also in {}, readable by you \
                 only):\n  email    {}\n  password {}",
                config
                    .data_dir
                    .join(stack::ADMIN_CREDENTIALS_FILE)
                    .display(),
                admin.email,
                admin.password
            );
        }
        eprintln!();
        stack.run_until_stopped(runtime::shutdown_signal()).await
    })
    .await
}
