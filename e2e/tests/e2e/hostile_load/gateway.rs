//! Hostile load on the gateway, every process on real backends, the gateway rate-limiting (20
//! a second, bursts of 40 per client):
//! - a client that writes its own `X-Forwarded-For` (one spoofed address, then a new one on
//!   every request) is still its socket's address: the one `X-Forwarded-For` the gateway sends
//!   holds that, so products-service's access line shows it and never the spoof, and the
//!   gateway's own line too;
//! - that client floods the gateway (2 000 requests from 40 connections, each naming a new
//!   address of its own) while a normal client at another address sends a request every 50 ms:
//!   the flood meets 429s past its budget, however many addresses it names, and the normal
//!   client gets a 2xx for every request. The gateway's peak resident memory (`VmHWM`) is read
//!   from `/proc` and bounded.
//!
//! - behind a sticky `/socket.io` route to two chat-service instances, every Engine.IO request
//!   naming a session (polling GET and POST, the WebSocket upgrade) reaches the instance that
//!   opened it, and a flood of forged session ids leaves the gateway's memory bounded.
//!
//! Each client connects from its own loopback address (127.0.0.x), so the gateway sees two
//! distinct peers, as it would two hosts.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use e2e::{Platform, Tuning};
use futures_util::{SinkExt, StreamExt, future::join_all};
use serde_json::Value;

use crate::journey::S3;

/// The gateway's rate limit in this test (the `[rate_limit]` table).
const PER_SECOND: u64 = 20;
const BURST: u64 = 40;

/// What the flood may make the gateway's peak resident memory.
const PEAK_RSS_BOUND: u64 = 64 * 1024 * 1024;

/// A client whose connections leave from the loopback address `source`.
fn client_from(source: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(source))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client")
}

#[tokio::test]
async fn a_client_cannot_choose_its_address_nor_starve_another_with_a_flood() {
    testing::skip_unless!(Postgres, Redis, RabbitMq, S3sFs);
    let s3 = S3::start().await;
    let backends = s3.backends.clone();
    let tuning = Tuning {
        gateway_server: format!("[rate_limit]\nper_second = {PER_SECOND}\nburst = {BURST}"),
        ..Tuning::default()
    };
    let platform = Platform::processes_tuned(&backends, &tuning)
        .await
        .expect("every process starts");
    spoofed_addresses_stay_out_of_the_logs(&platform).await;
    a_flood_does_not_starve_a_normal_client(&platform).await;
    platform
        .stop(Duration::from_secs(15))
        .expect("every process exits 0 on SIGTERM");
}

/// The `ip` of `process`'s access line for `request_id`.
fn logged_ip(platform: &Platform, process: &str, request_id: &str) -> Option<String> {
    let process = platform
        .processes
        .iter()
        .find(|candidate| candidate.name == process)
        .expect("the process");
    let lines: Vec<String> = process.stdout.lock().expect("log").clone();
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["msg"] == "request" && line["request_id"] == request_id)
        .and_then(|line| line["ip"].as_str().map(str::to_owned))
}

async fn spoofed_addresses_stay_out_of_the_logs(platform: &Platform) {
    let attacker = Ipv4Addr::new(127, 0, 0, 7);
    let client = client_from(attacker);
    let request_id = format!("spoof-{}", uuid::Uuid::new_v4().simple());
    let response = client
        .get(platform.url("/api/products"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-for", "203.0.113.66, 10.0.0.1")
        .header("x-request-id", &request_id)
        .send()
        .await
        .expect("GET /api/products");
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await;
    // The access lines are written when the response is done: wait for them, boundedly.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (gateway_ip, products_ip) = loop {
        let logged = (
            logged_ip(platform, "gateway", &request_id),
            logged_ip(platform, "products", &request_id),
        );
        if (logged.0.is_some() && logged.1.is_some()) || Instant::now() > deadline {
            break logged;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let vouched = attacker.to_string();
    assert_eq!(
        gateway_ip.as_deref(),
        Some(vouched.as_str()),
        "the gateway's line"
    );
    assert_eq!(
        products_ip.as_deref(),
        Some(vouched.as_str()),
        "products-service's line shows the address the gateway vouches for"
    );
    let everything = platform.output_lines();
    for (process, line) in &everything {
        if line.contains(&request_id) {
            for spoof in ["6.6.6.6", "203.0.113.66", "10.0.0.1"] {
                assert!(!line.contains(spoof), "{process} logged {spoof}: {line}");
            }
        }
    }
}

async fn a_flood_does_not_starve_a_normal_client(platform: &Platform) {
    let gateway = platform
        .processes
        .iter()
        .find(|process| process.name == "gateway")
        .expect("the gateway");
    let rss_before = gateway.rss_bytes();
    let attacker = client_from(Ipv4Addr::new(127, 0, 0, 8));
    let normal = client_from(Ipv4Addr::new(127, 0, 0, 9));
    let url = platform.url("/api/products");
    let started = Instant::now();
    let flood = join_all((0..40).map(|connection| {
        let (attacker, url) = (attacker.clone(), url.clone());
        async move {
            let mut statuses = Vec::with_capacity(50);
            for n in 0..50 {
                let spoof = format!("198.51.{connection}.{n}");
                let status = attacker
                    .get(&url)
                    .header("x-forwarded-for", spoof)
                    .send()
                    .await
                    .map_or(0, |response| response.status().as_u16());
                statuses.push(status);
            }
            statuses
        }
    }));
    let steady = async {
        let mut statuses = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for _ in 0..40 {
            tick.tick().await;
            let response = normal
                .get(&url)
                .send()
                .await
                .expect("the normal client's GET");
            statuses.push(response.status().as_u16());
        }
        statuses
    };
    let (flood, steady) = tokio::join!(flood, steady);
    let elapsed = started.elapsed();
    let flood: Vec<u16> = flood.into_iter().flatten().collect();
    let passed = flood.iter().filter(|status| **status == 200).count() as u64;
    let limited = flood.iter().filter(|status| **status == 429).count();
    let budget = BURST + PER_SECOND * (elapsed.as_secs() + 1);
    println!(
        "flood: {} requests in {elapsed:?}, {passed} passed, {limited} limited; normal client: {:?}",
        flood.len(),
        steady
    );
    assert_eq!(
        passed + limited as u64,
        flood.len() as u64,
        "each flood request is served or limited, none fails"
    );
    assert!(
        passed <= budget,
        "the flood got {passed}, over its budget of {budget}"
    );
    assert!(limited > 0);
    assert!(
        steady.iter().all(|status| (200..300).contains(status)),
        "the normal client was starved: {steady:?}"
    );
    let (rss, peak) = (gateway.rss_bytes(), gateway.peak_rss_bytes());
    println!(
        "gateway: VmRSS {} MiB before, {} MiB after, VmHWM {} MiB",
        rss_before >> 20,
        rss >> 20,
        peak >> 20
    );
    assert!(
        peak < PEAK_RSS_BOUND,
        "the gateway's VmHWM is {} MiB",
        peak >> 20
    );
}

/// Sessions opened through the gateway in the Socket.IO test.
const SESSIONS: usize = 6;

/// Requests naming forged session ids in the Socket.IO test.
const FORGED: usize = 2_000;

/// Two real chat-service instances behind one gateway whose `/socket.io` route is sticky:
/// every Engine.IO request naming a session (long-polling GET and POST, the WebSocket
/// upgrade) reaches the instance that opened it, each instance holding some of the sessions;
/// a flood of forged session ids is answered by the instances (400) and leaves the gateway's
/// memory bounded while the sessions keep working.
#[tokio::test]
async fn socket_io_sessions_stay_on_their_chat_instance_behind_the_gateway() {
    let pair = e2e::StickyChats::start(None)
        .await
        .expect("two chats behind a sticky gateway");
    let (chats, gateway) = (&pair.chats, &pair.gateway);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client");
    let polling =
        |base: &str, sid: &str| format!("{base}/socket.io/?EIO=4&transport=polling&sid={sid}");

    // Sessions opened through the gateway; which instance holds each, asked of each directly
    // (the one that opened it takes the Socket.IO connect packet, the other answers 400).
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        let opened = client
            .get(format!("{gateway}/socket.io/?EIO=4&transport=polling"))
            .send()
            .await
            .expect("a handshake");
        assert_eq!(opened.status(), 200);
        let body = opened.text().await.expect("the handshake");
        let handshake: Value =
            serde_json::from_str(body.trim_start_matches('0')).expect("Engine.IO's open packet");
        let sid = handshake["sid"].as_str().expect("a sid").to_owned();
        let mut owners = Vec::new();
        for (index, chat) in chats.iter().enumerate() {
            let connect = client
                .post(polling(chat, &sid))
                .body("40")
                .send()
                .await
                .expect("a connect packet");
            if connect.status() == 200 {
                owners.push(index);
            } else {
                assert_eq!(
                    connect.status(),
                    400,
                    "the other instance does not know {sid}"
                );
            }
        }
        assert_eq!(owners.len(), 1, "{sid} lives on one instance");
        sessions.push((owners[0], sid));
    }
    assert!(
        sessions.iter().any(|(owner, _)| *owner == 0)
            && sessions.iter().any(|(owner, _)| *owner == 1),
        "the gateway spread the sessions over both instances: {sessions:?}"
    );
    // One instance's sessions after the other's: out of step with any round-robin.
    sessions.sort();

    let forged = forge_sessions(&client, gateway).await;
    assert_eq!(forged, [FORGED, 0], "forged sessions: [400, other] answers");

    for (owner, sid) in &sessions {
        let polled = client
            .get(polling(gateway, sid))
            .send()
            .await
            .expect("a poll");
        assert_eq!(polled.status(), 200, "{sid} of instance {owner}");
        let packets = polled.text().await.expect("packets");
        assert!(
            packets.starts_with("40{"),
            "Socket.IO's connect answer: {packets}"
        );
        let sent = client
            .post(polling(gateway, sid))
            .body("6")
            .send()
            .await
            .expect("a noop packet");
        assert_eq!(sent.status(), 200, "{sid} of instance {owner}");
        let url = format!(
            "{}/socket.io/?EIO=4&transport=websocket&sid={sid}",
            gateway.replacen("http://", "ws://", 1)
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_or_else(|error| panic!("the upgrade of {sid} (instance {owner}): {error}"));
        socket
            .send(tokio_tungstenite::tungstenite::Message::text("2probe"))
            .await
            .expect("the probe");
        let answer = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an answer to the probe")
            .expect("a frame")
            .expect("a frame");
        assert_eq!(
            answer.into_text().expect("text").as_str(),
            "3probe",
            "{sid}"
        );
    }

    let gateway_process = pair.gateway_process();
    let peak = gateway_process.peak_rss_bytes();
    assert!(
        peak < PEAK_RSS_BOUND,
        "the gateway's VmHWM is {} MiB",
        peak / (1024 * 1024)
    );
    eprintln!(
        "sticky Socket.IO: {SESSIONS} sessions on [{}, {}] instances, {FORGED} forged sids all 400, gateway VmHWM {} MiB",
        sessions.iter().filter(|(owner, _)| *owner == 0).count(),
        sessions.iter().filter(|(owner, _)| *owner == 1).count(),
        peak / (1024 * 1024)
    );
    pair.stop().expect("every process exits on SIGTERM");
}

/// Sends [`FORGED`] polls naming session ids no instance issued (64 characters each, a new one
/// every request, 50 at a time): how many were answered 400 and how many otherwise.
async fn forge_sessions(client: &reqwest::Client, gateway: &str) -> [usize; 2] {
    let mut answers = [0, 0];
    for batch in 0..FORGED / 50 {
        let polls = (0..50).map(|n| {
            let sid = format!("{batch:032}{n:032}");
            client
                .get(format!(
                    "{gateway}/socket.io/?EIO=4&transport=polling&sid={sid}"
                ))
                .send()
        });
        for answer in join_all(polls).await {
            let status = answer.expect("an answer").status();
            answers[usize::from(status != 400)] += 1;
        }
    }
    answers
}
