//! The gateway as the trust boundary: the client's address is the socket peer, or, behind a
//! configured trusted proxy, the rightmost `X-Forwarded-For` entry that proxy vouches for. It
//! is the one `X-Forwarded-For` sent upstream, the access line's `ip` and the rate limiter's
//! key, on both paths.

use gateway::config::RateLimitConfig;
use serde_json::Value;

use crate::{
    direct::one_thread,
    framing::{PATHS, split},
    helpers::{exchange_raw, reserved_port, spawn_logging_to},
    scripted::ScriptedUpstream,
};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn request(forwarded_for: &str, id: &str) -> Vec<u8> {
    format!(
        "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: {forwarded_for}\r\nX-Forwarded-For: 6.6.6.7\r\nX-Request-Id: {id}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Sends one request from `forwarded_for` through a gateway on `path` whose trusted proxies
/// are `trusted`: the `X-Forwarded-For` lines the upstream got and the access line's `ip`.
async fn forwarded(path: &str, trusted: &[&str], forwarded_for: &str) -> (Vec<String>, String) {
    let upstream = ScriptedUpstream::always(OK).await;
    let mut config = one_thread(&upstream.url);
    config.server.direct_path = path == "direct";
    config.server.trusted_proxies = trusted
        .iter()
        .map(|n| n.parse().expect("network"))
        .collect();
    let (logger, logs) = testing::capturing_logger("gateway");
    let gateway = spawn_logging_to(config, logger);
    let text = exchange_raw(&gateway.authority, &request(forwarded_for, "trust-1")).await;
    assert_eq!(split(&text).0, 200, "{text}");
    gateway.server.stop().await;
    let received = String::from_utf8_lossy(&upstream.received()[0]).to_lowercase();
    let lines = received
        .lines()
        .filter(|line| line.starts_with("x-forwarded-for:"))
        .map(str::to_owned)
        .collect();
    let logs = String::from_utf8(logs.lock().expect("logs").clone()).expect("utf-8");
    let ip = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["request_id"] == "trust-1")
        .and_then(|line| line["ip"].as_str().map(str::to_owned))
        .expect("the access line");
    (lines, ip)
}

#[tokio::test]
async fn a_client_cannot_name_its_own_address() {
    for path in PATHS {
        let (lines, ip) = forwarded(path, &[], "6.6.6.6").await;
        assert_eq!(lines, ["x-forwarded-for: 127.0.0.1"], "{path}");
        assert_eq!(ip, "127.0.0.1", "{path}");
        // A trusted network that is not the peer's changes nothing.
        let (lines, _) = forwarded(path, &["10.0.0.0/8"], "6.6.6.6").await;
        assert_eq!(lines, ["x-forwarded-for: 127.0.0.1"], "{path}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_address_it_saw_is_the_client() {
    for path in PATHS {
        // The client wrote 6.6.6.6; the proxy (the peer, 127.0.0.1) saw 198.51.100.7 and
        // appended it, and the last field's 6.6.6.7 is written by the client too: the walk
        // from the right stops at the first untrusted entry.
        let (lines, ip) = forwarded(path, &["127.0.0.1", "6.6.6.7"], "6.6.6.6, 198.51.100.7").await;
        assert_eq!(lines, ["x-forwarded-for: 198.51.100.7"], "{path}");
        assert_eq!(ip, "198.51.100.7", "{path}");
    }
}

#[tokio::test]
async fn the_rate_limit_keys_on_the_vouched_address() {
    for path in PATHS {
        for trusted in [false, true] {
            let upstream = ScriptedUpstream::always(OK).await;
            let mut config = one_thread(&upstream.url);
            config.server.direct_path = path == "direct";
            if trusted {
                config.server.trusted_proxies = vec!["127.0.0.1".parse().expect("network")];
            }
            config.rate_limit = Some(RateLimitConfig {
                per_second: 1,
                burst: 2,
            });
            let gateway = crate::helpers::spawn(config);
            let mut statuses = Vec::new();
            // Three requests from one client, then one from another; each names a new
            // address of its own on the left, as a spoofing client would.
            for (n, from) in [
                "198.51.100.1",
                "198.51.100.1",
                "198.51.100.1",
                "198.51.100.2",
            ]
            .iter()
            .enumerate()
            {
                let request = format!(
                    "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.{n}, {from}\r\nConnection: close\r\n\r\n"
                );
                let text = exchange_raw(&gateway.authority, request.as_bytes()).await;
                statuses.push(split(&text).0);
            }
            let expected = if trusted {
                // The rightmost entry, which the proxy vouches for, is the client.
                [200, 200, 429, 200]
            } else {
                // Without trust every request is the peer's, whatever it wrote.
                [200, 200, 429, 429]
            };
            assert_eq!(statuses, expected, "{path}, trusted: {trusted}");
            gateway.server.stop().await;
        }
    }
}

#[tokio::test]
async fn the_trusted_proxies_variable_sets_the_binarys_list() {
    testing::assert_help_names(env!("CARGO_BIN_EXE_gateway"), &["TRUSTED_PROXIES"]);
    let upstream = ScriptedUpstream::always(OK).await;
    let dir = std::env::temp_dir().join(format!("gateway-trust-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("gateway.toml");
    // The file trusts nothing the test connects from; the variable trusts the loopback peer.
    let table = format!(
        "[server]\ntrusted_proxies = [\"192.0.2.1\"]\n[[routes]]\nprefix = \"/\"\nupstreams = [\"{}\"]\n",
        upstream.url
    );
    std::fs::write(&config, table).expect("config");
    for (variable, expected) in [
        (None, "x-forwarded-for: 127.0.0.1"),
        (
            Some("10.0.0.0/8,127.0.0.1"),
            "x-forwarded-for: 198.51.100.7",
        ),
    ] {
        // Held while the binary runs: no other test is given the port.
        let (_reserved, port) = reserved_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"));
        command
            .env("PORT", port.to_string())
            .env("GATEWAY_CONFIG", &config)
            .env("LOG_LEVEL", "warn")
            .env_remove("TRUSTED_PROXIES")
            .stdout(std::process::Stdio::null());
        if let Some(value) = variable {
            command.env("TRUSTED_PROXIES", value);
        }
        let mut gateway = command.spawn().expect("start the gateway binary");
        let authority = format!("127.0.0.1:{port}");
        testing::eventually(
            "the gateway answers",
            std::time::Duration::from_secs(10),
            || async { tokio::net::TcpStream::connect(&authority).await.is_ok() },
        )
        .await;
        let request = "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.7\r\nConnection: close\r\n\r\n";
        let text = exchange_raw(&authority, request.as_bytes()).await;
        assert_eq!(split(&text).0, 200, "{text}");
        gateway.kill().expect("kill");
        gateway.wait().expect("wait");
        let received = upstream.received();
        let received = String::from_utf8_lossy(received.last().expect("a request")).to_lowercase();
        let lines: Vec<&str> = received
            .lines()
            .filter(|line| line.starts_with("x-forwarded-for:"))
            .collect();
        assert_eq!(lines, [expected], "TRUSTED_PROXIES={variable:?}");
    }
    std::fs::remove_dir_all(dir).expect("cleanup");
}
