//! The collector: every `[ops] interval_ms` it resolves each upstream name of the route table
//! (each once, however many routes name it) and asks each of its addresses, as an instance of
//! its own, for `/healthz`, `/readyz` and `/metrics` with the name as `Host`, all bounded
//! (`timeout_ms` for the resolution and for each whole exchange, `max_body_bytes` per body),
//! and records what it got in [`super::Ops`]; and it reads the gateway's own health and series from
//! its registry, in process.

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http::{Request, StatusCode, header::HOST};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;

use super::{MAX_CHECKS, Probed, Readiness, exposition::Reading};
use crate::context::Shared;

/// Scrapes every instance of `shared`'s [`super::Ops`] each interval, until the task is dropped.
pub async fn run(shared: Arc<Shared>) {
    let ops = shared.ops.clone();
    let mut tick = tokio::time::interval(ops.settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        ops.record_gateway(gateway_probe(&shared));
        let names = ops.names().into_iter().map(|name| {
            let (ops, shared) = (ops.clone(), shared.clone());
            async move {
                let resolved =
                    tokio::time::timeout(ops.settings.timeout, shared.resolver.resolve(&name))
                        .await;
                let (addresses, failure) = match resolved {
                    Ok(Ok(addresses)) => (instance_addresses(&name, &addresses), None),
                    Ok(Err(error)) => (Vec::new(), Some(format!("resolving {name}: {error}"))),
                    Err(_) => (
                        Vec::new(),
                        Some(format!(
                            "resolving {name}: no answer within {:?}",
                            ops.settings.timeout
                        )),
                    ),
                };
                let targets = ops.resolved(&name, &addresses);
                let probes = targets.into_iter().map(|target| {
                    let (ops, name, failure) = (ops.clone(), name.clone(), failure.clone());
                    async move {
                        let probed = match failure {
                            Some(failure) => Probed::unreachable(&failure),
                            None => probe(&name, &target, &ops.settings).await,
                        };
                        ops.record(&name, &target, probed);
                    }
                });
                futures_util::future::join_all(probes).await;
            }
        });
        futures_util::future::join_all(names).await;
    }
}

/// The instances' addresses of the upstream `name` resolved to `addresses`: each address,
/// `IP:port`; or the name alone when its host is `localhost` (its loopback addresses of both
/// families are one machine, one process behind them).
pub fn instance_addresses(name: &str, addresses: &[SocketAddr]) -> Vec<String> {
    let host = name.rsplit_once(':').map_or(name, |(host, _)| host);
    if host.eq_ignore_ascii_case("localhost") {
        return vec![name.to_owned()];
    }
    addresses.iter().map(ToString::to_string).collect()
}

/// What the gateway reads of itself, without a request: healthy while it runs (it does, it
/// reads this), ready or degraded as its `/readyz` says (a route without an instance in
/// rotation is degraded), and the requests it routed from its registry (its own answers,
/// route `-`, left out: probes, this page, unknown paths).
fn gateway_probe(shared: &Shared) -> Probed {
    let checks: Vec<(String, String)> = shared
        .routes
        .routes()
        .iter()
        .take(MAX_CHECKS)
        .map(|route| {
            let state = if route.upstreams.none_in_rotation() {
                "no instance in rotation"
            } else {
                "ok"
            };
            (route.prefix.to_string(), state.to_owned())
        })
        .collect();
    let degraded = checks.iter().any(|(_, state)| state != "ok");
    let text = crate::local::metrics(shared);
    Probed {
        healthy: true,
        readiness: Readiness {
            status: if degraded { "degraded" } else { "ready" },
            checks,
            message: None,
        },
        reading: Some(Reading::of_excluding(&text, &[&*shared.no_route])),
        error: None,
    }
}

/// The three answers of `name`'s instance at `address`.
async fn probe(name: &str, address: &str, settings: &super::Settings) -> Probed {
    let (health, readiness, metrics) = tokio::join!(
        get(name, address, "/healthz", settings),
        get(name, address, "/readyz", settings),
        get(name, address, "/metrics", settings),
    );
    let healthy = matches!(&health, Ok((StatusCode::OK, _)));
    let readiness = match &readiness {
        Ok((status, body)) => Readiness::of(*status, body),
        Err(error) => Readiness::unreachable(error),
    };
    let (reading, error) = match metrics {
        Ok((StatusCode::OK, body)) => (Some(Reading::of(&String::from_utf8_lossy(&body))), None),
        Ok((status, _)) => (None, Some(format!("/metrics answered {status}"))),
        Err(error) => (None, Some(format!("/metrics: {error}"))),
    };
    Probed {
        healthy,
        readiness,
        reading,
        error,
    }
}

/// `GET path` of `name`'s instance at `address` (`Host: name`) on a connection of its own,
/// within the timeout, the body at most `max_body_bytes`: its status and body, or why not.
async fn get(
    name: &str,
    address: &str,
    path: &str,
    settings: &super::Settings,
) -> Result<(StatusCode, Bytes), String> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|error| format!("connecting: {error}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| error.to_string())?;
        let connection = tokio::spawn(connection);
        let request = Request::get(path)
            .header(HOST, name)
            .header("user-agent", "gateway-ops")
            .body(Empty::<Bytes>::new())
            .map_err(|error| error.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| error.to_string());
        let result = match response {
            Ok(response) => {
                let status = response.status();
                Limited::new(response.into_body(), settings.max_body_bytes)
                    .collect()
                    .await
                    .map(|body| (status, body.to_bytes()))
                    .map_err(|error| format!("reading the body: {error}"))
            }
            Err(error) => Err(error),
        };
        connection.abort();
        result
    };
    tokio::time::timeout(settings.timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {:?}", settings.timeout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_is_an_instance_but_localhosts() {
        let two: Vec<SocketAddr> = vec![
            "10.0.0.7:3001".parse().expect("an address"),
            "[fd00::8]:3001".parse().expect("an address"),
        ];
        assert_eq!(
            instance_addresses("users:3001", &two),
            ["10.0.0.7:3001", "[fd00::8]:3001"]
        );
        assert_eq!(
            instance_addresses("LocalHost:3001", &two),
            ["LocalHost:3001"]
        );
    }
}
