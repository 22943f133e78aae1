//! The collector: every `[ops] interval_ms` it asks each upstream instance of the route table
//! (each address once, however many routes name it) for `/healthz`, `/readyz` and `/metrics`,
//! all bounded (`timeout_ms` for the whole exchange, `max_body_bytes` per body), and records
//! what it got in [`Ops`].

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode, header::HOST};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;

use super::{Ops, Probed, Readiness, exposition::Reading};

/// Scrapes every instance of `ops` each interval, until the task is dropped.
pub async fn run(ops: Arc<Ops>) {
    let mut tick = tokio::time::interval(ops.settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let probes = ops.authorities().into_iter().map(|authority| {
            let ops = ops.clone();
            async move {
                let probed = probe(&authority, &ops.settings).await;
                ops.record(&authority, probed);
            }
        });
        futures_util::future::join_all(probes).await;
    }
}

/// The three answers of the instance at `authority`.
async fn probe(authority: &str, settings: &super::Settings) -> Probed {
    let (health, readiness, metrics) = tokio::join!(
        get(authority, "/healthz", settings),
        get(authority, "/readyz", settings),
        get(authority, "/metrics", settings),
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

/// `GET path` of the instance at `authority` on a connection of its own, within the timeout,
/// the body at most `max_body_bytes`: its status and body, or why not.
async fn get(
    authority: &str,
    path: &str,
    settings: &super::Settings,
) -> Result<(StatusCode, Bytes), String> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|error| format!("connecting: {error}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| error.to_string())?;
        let connection = tokio::spawn(connection);
        let request = Request::get(path)
            .header(HOST, authority)
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
