//! Active health checks (optional, `health_check_interval_ms`): every instance's `/healthz` is
//! asked on an interval; an instance that does not answer 200 leaves the rotation until it
//! does, before any client request has to fail on it. Passive health (ejection after connect
//! failures) works with or without them.

use std::{sync::Arc, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{context::Shared, upstream::Instance};

/// Whether `instance` answers `GET /healthz` with 200 within `timeout`.
pub async fn probe(instance: &Instance, timeout: Duration) -> bool {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(instance.authority.as_str()).await?;
        let request = format!(
            "GET /healthz HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n",
            instance.authority
        );
        stream.write_all(request.as_bytes()).await?;
        let mut status_line = [0_u8; 12];
        stream.read_exact(&mut status_line).await?;
        std::io::Result::Ok(status_line.starts_with(b"HTTP/1.") && &status_line[9..12] == b"200")
    };
    matches!(tokio::time::timeout(timeout, exchange).await, Ok(Ok(true)))
}

/// Probes every instance of every route each `interval`, until the task is dropped.
pub async fn run(shared: Arc<Shared>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for route in shared.routes.routes() {
            let results = futures_util::future::join_all(route.upstreams.instances().iter().map(
                |instance| async move {
                    (
                        instance,
                        probe(instance, interval.min(Duration::from_secs(2))).await,
                    )
                },
            ))
            .await;
            for (instance, healthy) in results {
                if healthy {
                    route.upstreams.mark_up(instance);
                } else if route.upstreams.mark_down(instance) {
                    shared
                        .telemetry
                        .metrics
                        .ejections
                        .with_label_values(&[&route.prefix, &instance.label])
                        .inc();
                    slog::warn!(shared.telemetry.logger, "upstream instance failed its health check";
                        "route" => &*route.prefix, "upstream" => &*instance.label);
                }
            }
        }
    }
}
