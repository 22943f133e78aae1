//! Spawning the gateway in front of test upstreams, and a raw HTTP/1.1 client for the cases
//! where a client library would rewrite the headers under test.

use std::{net::Ipv4Addr, ops::Deref};

use gateway::{
    Gateway,
    config::{GatewayConfig, OpsConfig, RouteAuth, RouteConfig, ServerConfig},
    resolve::Resolver,
};
use runtime::{Service, test_logger};
use testing::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running gateway.
pub struct TestGateway {
    /// Server and client.
    pub server: TestServer,
    /// `127.0.0.1:<port>`, for raw connections.
    pub authority: String,
}

impl Deref for TestGateway {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

/// A route to `upstreams`.
pub fn route(prefix: &str, upstreams: &[&str]) -> RouteConfig {
    RouteConfig {
        prefix: prefix.to_owned(),
        upstreams: upstreams.iter().map(|u| (*u).to_owned()).collect(),
        rewrite: None,
        host: None,
        response_timeout_ms: None,
        max_body_bytes: None,
        auth: RouteAuth::Optional,
        sticky: None,
        openapi: None,
    }
}

/// A config of `routes` with default server settings, two threads, and no operations
/// collector (its scrapes would reach the test upstreams).
pub fn config(routes: Vec<RouteConfig>) -> GatewayConfig {
    GatewayConfig {
        server: ServerConfig {
            threads: 2,
            ..ServerConfig::default()
        },
        rate_limit: None,
        cors: Default::default(),
        ops: OpsConfig {
            enabled: false,
            ..OpsConfig::default()
        },
        routes,
    }
}

/// The gateway with `config`, on a free port.
pub fn spawn(config: GatewayConfig) -> TestGateway {
    spawn_logging_to(config, test_logger("gateway"))
}

/// The gateway with `config`, logging to `logger`; tokens of `testing::test_keys`
/// verify.
pub fn spawn_logging_to(config: GatewayConfig, logger: slog::Logger) -> TestGateway {
    spawn_with(config, logger, testing::test_verifier())
}

/// The gateway with `config`, logging to `logger`, checking tokens with `verifier`.
pub fn spawn_with(
    config: GatewayConfig,
    logger: slog::Logger,
    verifier: std::sync::Arc<auth::Verifier>,
) -> TestGateway {
    spawn_resolving(config, logger, verifier, Resolver::System)
}

/// The gateway with `config`, logging to `logger`, checking tokens with `verifier`, resolving
/// the upstreams' names with `resolver`.
pub fn spawn_resolving(
    config: GatewayConfig,
    logger: slog::Logger,
    verifier: std::sync::Arc<auth::Verifier>,
    resolver: Resolver,
) -> TestGateway {
    let address = (Ipv4Addr::LOCALHOST, 0).into();
    let gateway = Gateway::build_resolving(config, address, logger, verifier, resolver)
        .expect("the gateway builds");
    let port = gateway.port();
    let server = TestServer::start(port, |shutdown| gateway.run_until_stopped(shutdown));
    TestGateway {
        server,
        authority: format!("127.0.0.1:{port}"),
    }
}

/// Sends `request` as written on a new connection and reads the response to the connection's
/// end (ask for `Connection: close`); returns the status line and headers, lower-cased, and
/// the body.
pub async fn raw(authority: &str, request: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_lowercase(), body.to_owned())
}

/// Writes `request` on a new connection and reads everything until the gateway closes it.
pub async fn exchange_raw(authority: &str, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    stream.write_all(request).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

/// A port for a gateway binary the test starts, held until the returned socket is dropped: the
/// socket is bound with `SO_REUSEPORT` and never listens, so the kernel gives the port to no
/// other test's bind, while the binary's own `SO_REUSEPORT` listener (`server::bind_listeners`)
/// can join it on `127.0.0.1`; connections go to the listening socket only.
pub fn reserved_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.set_reuseport(true).expect("SO_REUSEPORT");
    socket.bind((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
    let port = socket.local_addr().expect("address").port();
    (socket, port)
}
