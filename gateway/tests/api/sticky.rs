//! Engine.IO session affinity (`sticky = "engine.io"`): with two instances behind one route,
//! or two replicas behind one name (one instance whose name resolves to two addresses), every
//! long-polling request and the WebSocket upgrade naming a `sid` reach the one that issued it,
//! on both the direct path's and hyper's configuration.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use gateway::{config::Sticky, resolve::Resolver};
use runtime::test_logger;
use testing::test_verifier;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::helpers::{TestGateway, config, route, spawn, spawn_resolving};

/// An Engine.IO-like instance: a handshake (no `sid`) is answered `0{"sid":"<name>-<n>",…}`
/// and its connection closed (so handshakes in a row take new connections, which the gateway
/// spreads over the addresses of a name);
/// a request naming one of its own sids is answered 200 with its name (an upgrade: 101, then
/// its name on the tunnel); any other sid is answered Engine.IO's 400 `Session ID unknown`.
async fn engine_io(name: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    engine_io_on(listener, name);
    url
}

/// [`engine_io`] on `listener`; aborting the task stops it and closes its connections.
fn engine_io_on(listener: TcpListener, name: &'static str) -> tokio::task::JoinHandle<()> {
    let issued = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            connections.spawn(serve(stream, name, issued.clone()));
        }
    })
}

/// Two Engine.IO replicas on one port of two loopback addresses, 127.0.0.1 (`a`) and
/// 127.0.0.2 (`b`), as the replicas of a scaled compose service or the pods of a headless
/// Service are: the port, and replica `b`'s task.
async fn two_replicas() -> (u16, tokio::task::JoinHandle<()>) {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = a.local_addr().expect("address").port();
        // The port can be taken on 127.0.0.2 already: then another one.
        if let Ok(b) = TcpListener::bind(("127.0.0.2", port)).await {
            engine_io_on(a, "a");
            return (port, engine_io_on(b, "b"));
        }
    }
}

async fn serve(mut stream: TcpStream, name: &'static str, issued: Arc<AtomicUsize>) {
    let mut buffer = Vec::new();
    loop {
        let Some(end) = read_head(&mut stream, &mut buffer).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |value| value.trim().parse().expect("a length"));
        while buffer.len() < end + length {
            if stream.read_buf(&mut buffer).await.unwrap_or(0) == 0 {
                return;
            }
        }
        buffer.drain(..end + length);
        let target = head.split(' ').nth(1).unwrap_or("").to_owned();
        let sid = target
            .split(['?', '&'])
            .find_map(|pair| pair.strip_prefix("sid="));
        let reply = match sid {
            None => {
                let n = issued.fetch_add(1, Ordering::SeqCst);
                let body = format!(
                    r#"0{{"sid":"{name}-{n}","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000}}"#
                );
                let handshake = format!(
                    "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(handshake.as_bytes()).await;
                return;
            }
            Some(sid) if sid.starts_with(&format!("{name}-")) => {
                if head.contains("\r\nupgrade: websocket") {
                    let switch = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n{name}"
                    );
                    let _ = stream.write_all(switch.as_bytes()).await;
                    return;
                }
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{name}",
                    name.len()
                )
            }
            Some(_) => {
                let body = r#"{"code":1,"message":"Session ID unknown"}"#;
                format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
            }
        };
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads until `buffer` holds a whole head; its length.
async fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            return Some(at + 4);
        }
        if stream.read_buf(buffer).await.ok()? == 0 {
            return None;
        }
    }
}

/// The gateway with one sticky instance, `http://chat.test:<port>`, whose name resolves to both
/// replicas of [`two_replicas`]; and replica `b`'s task.
async fn two_replicas_behind_one_name(
    direct_path: bool,
) -> (TestGateway, tokio::task::JoinHandle<()>) {
    let (port, b) = two_replicas().await;
    let name = format!("chat.test:{port}");
    let addresses: Vec<SocketAddr> = ["127.0.0.1", "127.0.0.2"]
        .iter()
        .map(|ip| format!("{ip}:{port}").parse().expect("an address"))
        .collect();
    let mut socket_io = route("/socket.io", &[&format!("http://{name}")]);
    socket_io.sticky = Some(Sticky::EngineIo);
    let mut config = config(vec![socket_io]);
    config.server.direct_path = direct_path;
    let resolver = Resolver::Fixed(HashMap::from([(name, addresses)]));
    let gateway = spawn_resolving(config, test_logger("gateway"), test_verifier(), resolver);
    (gateway, b)
}

async fn two_instances_behind(direct_path: bool) -> TestGateway {
    let (a, b) = (engine_io("a").await, engine_io("b").await);
    let mut socket_io = route("/socket.io", &[&a, &b]);
    socket_io.sticky = Some(Sticky::EngineIo);
    let mut config = config(vec![socket_io]);
    config.server.direct_path = direct_path;
    spawn(config)
}

/// Opens `count` sessions through the gateway: their sids.
async fn handshakes(gateway: &TestGateway, count: usize) -> Vec<String> {
    let mut sids = Vec::new();
    for _ in 0..count {
        let response = gateway.get("/socket.io/?EIO=4&transport=polling").await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.expect("a body");
        let sid = body
            .split('"')
            .nth(3)
            .unwrap_or_else(|| panic!("a sid in {body}"));
        sids.push(sid.to_owned());
    }
    assert!(
        sids.iter().any(|sid| sid.starts_with("a-"))
            && sids.iter().any(|sid| sid.starts_with("b-")),
        "the handshakes are spread over both instances: {sids:?}"
    );
    sids
}

/// Polls and posts to every session of `sids` through `gateway`: each reaches its issuer.
async fn every_request_reaches_its_issuer(gateway: &TestGateway, sids: &[String], case: &str) {
    let client = reqwest::Client::new();
    for sid in sids {
        let instance = &sid[..1];
        let url = gateway.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"));
        for _ in 0..3 {
            let polled = client.get(&url).send().await.expect("a poll");
            assert_eq!(polled.status(), 200, "{sid} ({case})");
            assert_eq!(polled.text().await.expect("a body"), instance);
            let sent = client
                .post(&url)
                .body("4hello")
                .send()
                .await
                .expect("a post");
            assert_eq!(sent.status(), 200, "{sid} ({case})");
            assert_eq!(sent.text().await.expect("a body"), instance);
        }
    }
}

#[tokio::test]
async fn every_polling_request_of_a_session_reaches_the_instance_that_opened_it() {
    for direct_path in [true, false] {
        let gateway = two_instances_behind(direct_path).await;
        let sids = handshakes(&gateway, 6).await;
        let case = format!("two instances, direct_path {direct_path}");
        every_request_reaches_its_issuer(&gateway, &sids, &case).await;
    }
}

#[tokio::test]
async fn every_polling_request_of_a_session_reaches_the_replica_behind_one_name_that_opened_it() {
    for direct_path in [true, false] {
        let (gateway, _b) = two_replicas_behind_one_name(direct_path).await;
        // The handshakes themselves are spread over both replicas (asserted there).
        let sids = handshakes(&gateway, 6).await;
        let case = format!("two replicas behind one name, direct_path {direct_path}");
        every_request_reaches_its_issuer(&gateway, &sids, &case).await;
    }
}

#[tokio::test]
async fn the_websocket_upgrade_of_a_session_reaches_the_instance_that_opened_it() {
    let gateway = two_instances_behind(true).await;
    let mut sids = handshakes(&gateway, 6).await;
    // One instance's sessions after the other's, out of step with the round-robin.
    sids.sort();
    for sid in sids {
        let mut stream = TcpStream::connect(&gateway.authority)
            .await
            .expect("connect");
        let upgrade = format!(
            "GET /socket.io/?EIO=4&transport=websocket&sid={sid} HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(upgrade.as_bytes()).await.expect("send");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
        assert!(
            answer.ends_with(&format!("\r\n\r\n{}", &sid[..1])),
            "{sid} reached the other instance: {answer}"
        );
    }
}

#[tokio::test]
async fn an_unknown_sid_gets_the_instances_own_answer() {
    let gateway = two_instances_behind(true).await;
    let mut statuses = Vec::new();
    for n in 0..4 {
        let polled = gateway
            .get(&format!(
                "/socket.io/?EIO=4&transport=polling&sid=forged-{n}"
            ))
            .await;
        statuses.push(polled.status().as_u16());
    }
    assert_eq!(
        statuses, [400; 4],
        "the instances' own answer to a session they do not know"
    );
}

#[tokio::test]
async fn a_session_whose_replica_is_gone_gets_the_other_replicas_answer() {
    let (gateway, b) = two_replicas_behind_one_name(false).await;
    let sids = handshakes(&gateway, 4).await;
    b.abort();
    let _ = b.await;
    for sid in sids {
        let polled = gateway
            .get(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"))
            .await;
        let status = polled.status().as_u16();
        let body = polled.text().await.expect("a body");
        if sid.starts_with("a-") {
            assert_eq!((status, body.as_str()), (200, "a"), "{sid}");
        } else {
            // Not a 502: the session's address refuses, and replica a answers instead.
            assert_eq!(status, 400, "{sid}: {body}");
            assert!(body.contains("Session ID unknown"), "{sid}: {body}");
        }
    }
}
