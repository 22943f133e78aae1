//! A process of the platform: the [`Service`] it runs, logging set up and torn down around it
//! ([`run_process`]), and the `--healthcheck` probe a container runs against it ([`probe`]).

use std::{future::Future, process::ExitCode};

use slog::Logger;

use crate::{config::ProcessArgs, telemetry};

/// A built server of the platform (a service, the gateway): bound, not yet serving. The binary,
/// the stack and the tests all run one through this.
pub trait Service {
    /// The port it listens on (the real one when it was asked for port 0).
    fn port(&self) -> u16;

    /// Serves until `shutdown` resolves, then drains and stops.
    fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Sets up logging and span export, runs `run` with the root logger, and turns its outcome into
/// the exit status: 0 after a clean shutdown, 1 (after logging the cause) on failure, 2 when
/// the log directory cannot be opened. Pending spans and the logs are flushed before it
/// returns.
pub async fn run_process<F, Fut>(name: &'static str, process: &ProcessArgs, run: F) -> ExitCode
where
    F: FnOnce(Logger) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let filter = match process.log_filter() {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let (root, guard) = match telemetry::init(name, process, filter) {
        Ok(logging) => logging,
        Err(error) => {
            eprintln!("error: LOG_DIR (--log-dir): {error}");
            return ExitCode::from(2);
        }
    };
    process.trace.install();
    let code = match run(root.clone()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            slog::error!(root, "failed"; "service" => name, "error" => format!("{error:#}"));
            ExitCode::FAILURE
        }
    };
    // The batch processor's blocking export may wait on the collector: off the runtime.
    let _ = tokio::task::spawn_blocking(crate::export::flush_spans).await;
    drop(root);
    drop(guard);
    code
}

/// Asks the server on `127.0.0.1:port` for `GET /healthz`: exit status 0 on a 200, 1 otherwise
/// (`--healthcheck`, for container health checks).
pub fn probe(port: u16) -> std::process::ExitCode {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(2);
    let answered = std::net::TcpStream::connect_timeout(
        &(std::net::Ipv4Addr::LOCALHOST, port).into(),
        timeout,
    )
    .and_then(|mut stream| {
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0_u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
    })
    .unwrap_or(false);
    if answered {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
