//! Hostile load on chat, through the gateway, every process on real backends: one address
//! opens 200 connections at once (capped at chat's `CHAT_CONNECTIONS_PER_ADDRESS`, 20: the
//! rest get 429), ten of its connections send a burst of 20 messages each (together they get
//! the address's budget, 40 and 20 a second: the rest are dropped with `rate_limited`), and
//! accounts try names that pass for others (a second "Alice", a right-to-left override,
//! zero-width characters, a decomposed accent): suffixed, stripped, normalised. A normal
//! client in the same room, at another address, keeps chatting throughout: every message it
//! sends is delivered, none refused. chat-service's peak resident memory (`VmHWM`) is read
//! from `/proc` and bounded.
//!
//! Each client connects from its own loopback address (127.0.0.x), so the gateway names each
//! its own client address, as it would distinct hosts.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use auth::{Role, SigningKeys, TokenIssuer};
use e2e::Platform;
use futures_util::{StreamExt, future::join_all};
use serde_json::{Value, json};
use tokio_tungstenite::{
    MaybeTlsStream, client_async,
    tungstenite::{self, client::IntoClientRequest, http::HeaderValue},
};

use crate::{
    clients::{Socket, next_json, next_of_type, send},
    journey::S3,
};

/// chat-service's defaults, which the platform runs with.
const CONNECTIONS_PER_ADDRESS: usize = 20;
const ADDRESS_BURST: usize = 40;
const ADDRESS_PER_SECOND: f64 = 20.0;

/// What the attack may make chat-service's peak resident memory.
const PEAK_RSS_BOUND: u64 = 128 * 1024 * 1024;

const PATIENCE: Duration = Duration::from_secs(10);

/// A refused handshake: its status and JSON body.
#[derive(Debug)]
struct Refused {
    status: u16,
    body: Value,
}

/// Opens `/chat/ws?room=<room>` on the gateway from the loopback address `source`, with
/// `Authorization: Bearer <token>` when given.
async fn connect_from(
    gateway: &str,
    source: Ipv4Addr,
    room: &str,
    token: Option<&str>,
) -> Result<Socket, Refused> {
    let authority = gateway.trim_start_matches("http://");
    let mut request = format!("ws://{authority}/chat/ws?room={room}")
        .into_client_request()
        .expect("a WebSocket request");
    if let Some(token) = token {
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value"),
        );
    }
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(source), 0))
        .expect("bind a loopback source address");
    let target: SocketAddr = authority.parse().expect("the gateway's address");
    let stream = socket.connect(target).await.expect("TCP connect");
    match client_async(request, MaybeTlsStream::Plain(stream)).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(Refused {
            status: response.status().as_u16(),
            body: response
                .body()
                .as_deref()
                .and_then(|body| serde_json::from_slice(body).ok())
                .unwrap_or(Value::Null),
        }),
        Err(error) => panic!("the handshake failed: {error}"),
    }
}

/// Connects and reads `welcome` and `history`; the welcome.
async fn join(socket: &mut Socket) -> Value {
    let welcome = next_of_type(socket, "welcome", PATIENCE).await;
    next_of_type(socket, "history", PATIENCE).await;
    welcome
}

/// Keeps a socket read (answering pings) until the task is aborted.
fn drain(mut socket: Socket) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while let Some(Ok(_)) = socket.next().await {} })
}

/// The next frame that is neither someone's `chatMessage` nor presence, of `socket`'s own
/// making: its message `own` delivered (`true`) or an `error` (`false`, which must be
/// `rate_limited`).
async fn own_outcome(socket: &mut Socket, own: &str) -> bool {
    loop {
        let event = next_json(socket, PATIENCE)
            .await
            .unwrap_or_else(|| panic!("no outcome for {own}"));
        match event["type"].as_str() {
            Some("chatMessage")
                if event["text"]
                    .as_str()
                    .is_some_and(|text| text.starts_with(own)) =>
            {
                return true;
            }
            Some("error") => {
                assert_eq!(event["code"], "rate_limited", "{event}");
                assert!(
                    event["message"]
                        .as_str()
                        .is_some_and(|message| message.contains("127.0.0.3")),
                    "the refusal names the address: {event}"
                );
                return false;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn one_address_is_capped_and_budgeted_and_names_cannot_pass_for_others() {
    testing::skip_unless!(Postgres, Redis, RabbitMq, S3sFs);
    let s3 = S3::start().await;
    let backends = s3.backends.clone();
    let platform = Platform::processes(&backends)
        .await
        .expect("every process starts");
    attacks(&platform).await;
    platform
        .stop(Duration::from_secs(15))
        .expect("every process exits 0 on SIGTERM");
}

async fn attacks(platform: &Platform) {
    let gateway = platform.gateway.as_str();
    let room = format!("hostile-{}", uuid::Uuid::new_v4().simple());
    let (normal_address, attacker, names_address) = (
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
        Ipv4Addr::new(127, 0, 0, 4),
    );
    let chat = platform
        .processes
        .iter()
        .find(|process| process.name == "chat")
        .expect("the chat process");
    let rss_at_start = chat.rss_bytes();

    // The normal client: a signed-up account, in the room before the attack.
    let normal = platform.sign_up("Normal Client").await;
    let mut normal_socket =
        connect_from(gateway, normal_address, &room, Some(&normal.access_token))
            .await
            .expect("the normal client is let in");
    assert_eq!(join(&mut normal_socket).await["user"], "Normal Client");

    // 200 connections at once from one address: 20 let in, the rest 429 before any upgrade.
    let started = Instant::now();
    let answers = join_all((0..200).map(|_| connect_from(gateway, attacker, &room, None))).await;
    let connecting = started.elapsed();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for answer in answers {
        match answer {
            Ok(socket) => accepted.push(socket),
            Err(refusal) => {
                assert_eq!(refusal.status, 429, "{refusal:?}");
                assert_eq!(refusal.body["error"]["code"], "rate_limited", "{refusal:?}");
                refused += 1;
            }
        }
    }
    println!(
        "200 connections from one address in {connecting:?}: {} let in, {refused} refused with 429",
        accepted.len()
    );
    assert_eq!(accepted.len(), CONNECTIONS_PER_ADDRESS);
    assert_eq!(refused, 200 - CONNECTIONS_PER_ADDRESS);
    let chat_url = &platform.services["chat"];
    assert_eq!(
        e2e::metric(chat_url, "chat_connections_refused_total", &[]).await,
        refused as f64
    );
    for socket in &mut accepted {
        join(socket).await;
    }
    // The normal client still gets in and chats meanwhile.
    send(
        &mut normal_socket,
        json!({"type": "chatMessage", "text": "normal 0"}),
    )
    .await;
    assert!(own_normal(&mut normal_socket, "normal 0").await);

    // Ten of them send a burst of 20 each; the normal client sends 5 meanwhile.
    let mut senders: Vec<Socket> = accepted.drain(..10).collect();
    let idle: Vec<_> = accepted.into_iter().map(drain).collect();
    let started = Instant::now();
    for (n, sender) in senders.iter_mut().enumerate() {
        for m in 0..20 {
            send(
                sender,
                json!({"type": "chatMessage", "text": format!("flood {n} {m}")}),
            )
            .await;
        }
    }
    for m in 1..=5 {
        send(
            &mut normal_socket,
            json!({"type": "chatMessage", "text": format!("normal {m}")}),
        )
        .await;
    }
    let mut delivered = 0;
    for (n, sender) in senders.iter_mut().enumerate() {
        for _ in 0..20 {
            if own_outcome(sender, &format!("flood {n} ")).await {
                delivered += 1;
            }
        }
    }
    let flooding = started.elapsed().as_secs_f64();
    let budget = ADDRESS_BURST + (flooding * ADDRESS_PER_SECOND).ceil() as usize;
    println!(
        "10 connections x a burst of 20 from one address: {delivered} of 200 delivered in \
         {flooding:.2} s (budget {ADDRESS_BURST} + {ADDRESS_PER_SECOND}/s = {budget})"
    );
    assert!(
        (ADDRESS_BURST..=budget).contains(&delivered),
        "{delivered} delivered, budget {budget}"
    );
    // Every one of the normal client's messages was delivered, in order, none refused.
    for m in 1..=5 {
        assert!(
            own_normal(&mut normal_socket, &format!("normal {m}")).await,
            "normal {m} was refused"
        );
    }

    names(platform, gateway, names_address, &room, &mut normal_socket).await;

    // The attacker leaves; the normal client chats on.
    drop(senders);
    for task in idle {
        task.abort();
    }
    send(
        &mut normal_socket,
        json!({"type": "chatMessage", "text": "normal after"}),
    )
    .await;
    assert!(own_normal(&mut normal_socket, "normal after").await);

    let (rss, peak) = (chat.rss_bytes(), chat.peak_rss_bytes());
    println!(
        "chat-service: VmRSS {} MiB at start, {} MiB after the attacks, VmHWM {} MiB",
        rss_at_start >> 20,
        rss >> 20,
        peak >> 20
    );
    assert!(
        peak < PEAK_RSS_BOUND,
        "chat-service peaked at {} MiB",
        peak >> 20
    );
}

/// Reads the normal client's frames until its own message `text`: `true` delivered, `false`
/// refused with an error.
async fn own_normal(socket: &mut Socket, text: &str) -> bool {
    loop {
        let event = next_json(socket, PATIENCE)
            .await
            .unwrap_or_else(|| panic!("neither {text} nor an error came back"));
        match event["type"].as_str() {
            Some("chatMessage") if event["text"] == text => {
                assert_eq!(event["user"], "Normal Client", "{event}");
                return true;
            }
            Some("error") => {
                println!("the normal client got {event}");
                return false;
            }
            _ => {}
        }
    }
}

/// Names that would pass for others, from accounts at `source`: a second "Alice" (a real
/// sign-up) gets a suffix; names users-service would refuse, in tokens signed with the
/// platform's key, are shown stripped and in NFC. The normal client sees each join under the
/// name the server gave.
async fn names(
    platform: &Platform,
    gateway: &str,
    source: Ipv4Addr,
    room: &str,
    normal: &mut Socket,
) {
    let first = platform.sign_up("Alice").await;
    let second = platform.sign_up("aLiCe").await;
    let keys = SigningKeys::load(&platform.signing_key_file).expect("the key file");
    let issuer = TokenIssuer::new(
        Arc::new(keys),
        auth::DEFAULT_ISSUER,
        auth::DEFAULT_AUDIENCE,
        Duration::from_secs(600),
    );
    let crafted = |id: i64, name: &str| {
        issuer
            .issue(id, name, &[Role::User])
            .expect("a signed token")
            .token
    };
    let cases = [
        (first.access_token.clone(), "Alice".to_owned()),
        (second.access_token.clone(), "aLiCe (2)".to_owned()),
        // Reads as "Alice" on screen: a right-to-left override, "ecilA", a zero-width space.
        (
            crafted(9_000_001, "\u{202E}ecilA\u{200B}"),
            "ecilA".to_owned(),
        ),
        // Zero-width joiner and byte-order mark inside "Alice": the same name, so suffixed.
        (
            crafted(9_000_002, "Al\u{200D}ic\u{FEFF}e"),
            "Alice (3)".to_owned(),
        ),
        // "A" and a combining ring: "Å" in NFC.
        (crafted(9_000_003, "A\u{30A}sa"), "\u{C5}sa".to_owned()),
    ];
    let mut held = Vec::new();
    for (token, shown) in cases {
        let mut socket = connect_from(gateway, source, room, Some(&token))
            .await
            .unwrap_or_else(|refusal| panic!("{shown}: {refusal:?}"));
        let welcome = join(&mut socket).await;
        assert_eq!(welcome["user"], shown.as_str(), "{welcome}");
        loop {
            let event = next_of_type(normal, "userJoined", PATIENCE).await;
            if event["user"] == shown.as_str() {
                break;
            }
        }
        held.push(socket);
    }
    println!(
        "names: a second Alice, an RTL override, zero-width characters and a decomposed accent shown as the server named them"
    );
}
