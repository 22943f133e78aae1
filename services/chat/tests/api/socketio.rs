//! `/socket.io/` against the Engine.IO v4 and Socket.IO v5 specifications, packet by packet:
//! the handshake's fields, the specification's errors, the heartbeat, the upgrade probe and
//! polling refused after it, one `GET` at a time, `maxPayload`, the unknown namespace, binary
//! attachments, tokens in `auth`, and one hub for both protocols (also across instances).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use testing::{TestBackend, fresh_database, redis_url};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest},
};

use chat_service::limits::Rate;

use crate::helpers::{
    ChatApp, PATIENCE, eventually, message_budgets_out_of_reach, spawn_app, spawn_tuned,
    spawn_with, test_chat_settings, test_settings, token_named,
};

/// A raw Engine.IO client over a WebSocket.
pub struct Sio {
    pub(crate) socket: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    /// Answer the server's pings (`2`) with pongs (`3`).
    pub pong: bool,
}

/// `ws://…/socket.io/?EIO=4&transport=websocket` plus `extra`.
pub(crate) fn ws_url(app: &ChatApp, extra: &str) -> String {
    format!(
        "{}/socket.io/?EIO=4&transport=websocket{extra}",
        app.service.address.replace("http://", "ws://")
    )
}

/// `http://…/socket.io/?EIO=4&transport=polling` plus `extra`.
pub(crate) fn polling_url(app: &ChatApp, extra: &str) -> String {
    format!(
        "{}/socket.io/?EIO=4&transport=polling{extra}",
        app.service.address
    )
}

impl Sio {
    /// A session on the WebSocket from the start; its `open` payload.
    pub async fn open(app: &ChatApp) -> (Self, Value) {
        Self::open_with(app, &[]).await
    }

    /// A session on the WebSocket with these extra handshake headers; its `open` payload.
    pub async fn open_with(app: &ChatApp, headers: &[(&'static str, &str)]) -> (Self, Value) {
        let mut request = ws_url(app, "").into_client_request().expect("a request");
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, value.parse().expect("a header value"));
        }
        let (socket, _) = connect_async(request).await.expect("WebSocket");
        let mut sio = Self { socket, pong: true };
        let open = sio.recv().await;
        let open = open.strip_prefix('0').expect("the open packet first");
        (sio, serde_json::from_str(open).expect("open JSON"))
    }

    /// Sends a text packet.
    pub async fn send(&mut self, packet: &str) {
        self.socket
            .send(Message::text(packet))
            .await
            .expect("send a packet");
    }

    /// The next text packet (pings answered and skipped when [`Self::pong`]); `None` once the
    /// server closed the WebSocket.
    pub async fn next(&mut self) -> Option<String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("a packet in time");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    if self.pong && text.as_str() == "2" {
                        self.send("3").await;
                        continue;
                    }
                    return Some(text.as_str().to_owned());
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next text packet, which must come.
    pub async fn recv(&mut self) -> String {
        self.next().await.expect("the WebSocket is open")
    }

    /// The next event (`42["name",data]`), which must be `name`; its data.
    pub async fn expect(&mut self, name: &str) -> Value {
        let packet = self.recv().await;
        let event: Value = packet
            .strip_prefix("42")
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_else(|| panic!("expected event {name}, got {packet}"));
        assert_eq!(event[0], name, "expected {name}, got {packet}");
        event[1].clone()
    }

    /// Connects the main namespace with `auth`; its `welcome` and `history`.
    pub async fn connect(&mut self, auth: &Value) -> (Value, Value) {
        self.send(&format!("40{auth}")).await;
        let answer = self.recv().await;
        let sid: Value = serde_json::from_str(answer.strip_prefix("40").expect("CONNECT"))
            .unwrap_or_else(|_| panic!("CONNECT with a sid, got {answer}"));
        assert!(sid["sid"].is_string(), "{answer}");
        let welcome = self.expect("welcome").await;
        let history = self.expect("history").await;
        (welcome, history)
    }

    /// The ack `id`'s argument.
    pub async fn expect_ack(&mut self, id: u64) -> Value {
        let packet = self.recv().await;
        ack_argument(&packet, id).unwrap_or_else(|| panic!("expected ack {id}, got {packet}"))
    }

    /// The event `name` and the ack `id` of one message, in whichever order they come (the
    /// event goes through the room, the ack straight back): the event's data and the ack's
    /// argument.
    pub async fn expect_event_and_ack(&mut self, name: &str, id: u64) -> (Value, Value) {
        let (mut event, mut ack) = (None, None);
        while event.is_none() || ack.is_none() {
            let packet = self.recv().await;
            if let Some(argument) = ack_argument(&packet, id) {
                ack = Some(argument);
                continue;
            }
            let parsed: Value = packet
                .strip_prefix("42")
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_else(|| panic!("expected {name} or ack {id}, got {packet}"));
            assert_eq!(parsed[0], name, "expected {name} or ack {id}, got {packet}");
            event = Some(parsed[1].clone());
        }
        (event.expect("event"), ack.expect("ack"))
    }
}

/// The argument of `43<id>[argument]`, if `packet` is that ack.
fn ack_argument(packet: &str, id: u64) -> Option<Value> {
    let arguments: Value = serde_json::from_str(packet.strip_prefix(&format!("43{id}"))?).ok()?;
    Some(arguments[0].clone())
}

/// A polling session's handshake: its sid and `open` payload.
pub(crate) async fn polling_handshake(app: &ChatApp) -> (String, Value) {
    let response = reqwest::get(polling_url(app, "")).await.expect("handshake");
    assert_eq!(response.status(), 200);
    let body = response.text().await.expect("body");
    let open: Value =
        serde_json::from_str(body.strip_prefix('0').expect("open packet")).expect("open JSON");
    (open["sid"].as_str().expect("sid").to_owned(), open)
}

/// A polling `GET` of session `sid`: its status and body.
pub(crate) async fn poll(app: &ChatApp, sid: &str) -> (u16, String) {
    let response = reqwest::get(polling_url(app, &format!("&sid={sid}")))
        .await
        .expect("GET");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

/// A polling `POST` of `body` to session `sid`: its status and body.
pub(crate) async fn post(
    app: &ChatApp,
    sid: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(polling_url(app, &format!("&sid={sid}")))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(body)
        .send()
        .await
        .expect("POST");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

/// Polls until the packets received contain one starting with each of `wanted`, in order.
pub(crate) async fn poll_for(app: &ChatApp, sid: &str, wanted: &[&str]) -> Vec<String> {
    let mut packets: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut expected = wanted.iter().peekable();
        for packet in &packets {
            if expected
                .peek()
                .is_some_and(|prefix| packet.starts_with(*prefix))
            {
                expected.next();
            }
        }
        if expected.peek().is_none() {
            return packets;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never got {wanted:?}: {packets:?}"
        );
        let (status, body) = poll(app, sid).await;
        assert_eq!(status, 200, "{body}");
        for packet in body.split('\x1e') {
            if packet == "2" {
                post(app, sid, "3").await;
            }
            packets.push(packet.to_owned());
        }
    }
}

#[tokio::test]
async fn the_handshake_gives_the_specifications_fields_and_bad_queries_its_errors() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (sid, open) = polling_handshake(&app).await;
    assert!(sid.len() >= 20, "{open}");
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(
        open["pingInterval"],
        json!(app.chat.ping_interval.as_millis())
    );
    assert_eq!(
        open["pingTimeout"],
        json!(app.chat.pong_timeout.as_millis())
    );
    assert_eq!(open["maxPayload"], json!(app.chat.max_frame_bytes));
    // A session on the WebSocket from the start has nothing to upgrade to.
    let (_ws, open) = Sio::open(&app).await;
    assert_eq!(open["upgrades"], json!([]));
    assert_ne!(open["sid"], json!(sid));

    let refused = |query: &'static str, code: u8, message: &'static str| {
        let address = app.service.address.clone();
        async move {
            let response = reqwest::get(format!("{address}/socket.io/{query}"))
                .await
                .expect("GET");
            assert_eq!(response.status(), 400, "{query}");
            let body: Value = response.json().await.expect("JSON");
            assert_eq!(body, json!({"code": code, "message": message}), "{query}");
        }
    };
    refused("?transport=polling", 5, "Unsupported protocol version").await;
    refused(
        "?EIO=3&transport=polling",
        5,
        "Unsupported protocol version",
    )
    .await;
    refused(
        "?EIO=abc&transport=polling",
        5,
        "Unsupported protocol version",
    )
    .await;
    refused("?EIO=4", 0, "Transport unknown").await;
    refused("?EIO=4&transport=abc", 0, "Transport unknown").await;
    refused("?EIO=4&transport=polling&sid=nope", 1, "Session ID unknown").await;
    let response = reqwest::Client::new()
        .post(polling_url(&app, ""))
        .body("40")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body, json!({"code": 2, "message": "Bad handshake method"}));
}

#[tokio::test]
async fn a_client_that_misses_pongs_is_closed_and_one_that_answers_is_not() {
    let mut chat = test_chat_settings();
    chat.ping_interval = Duration::from_millis(100);
    chat.pong_timeout = Duration::from_millis(300);
    let app = spawn_tuned(TestBackend::Sqlite, chat).await;

    // Silent: pings come, then the WebSocket closes and the session is gone.
    let (mut silent, open) = Sio::open(&app).await;
    silent.connect(&json!({"room": "silent"})).await;
    silent.pong = false;
    let mut pings = 0;
    while let Some(packet) = silent.next().await {
        if packet == "2" {
            pings += 1;
        }
        assert!(pings < 20, "still open after {pings} pings unanswered");
    }
    assert!(pings >= 1, "pinged before being closed");
    let sid = open["sid"].as_str().expect("sid");
    let (status, body) = poll(&app, sid).await;
    assert_eq!(
        (status, body.as_str()),
        (400, r#"{"code":1,"message":"Session ID unknown"}"#)
    );

    // Answering: the session outlives many timeouts.
    let (mut alive, _) = Sio::open(&app).await;
    alive.connect(&json!({})).await;
    alive.pong = false;
    for _ in 0..10 {
        assert_eq!(alive.recv().await, "2", "a ping every pingInterval");
        alive.send("3").await;
    }
    alive.pong = true;
    alive.send(r#"42["chatMessage","still here"]"#).await;
    assert_eq!(alive.expect("chatMessage").await["text"], "still here");
}

#[tokio::test]
async fn the_upgrade_probe_moves_the_session_and_polling_is_refused_after() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (sid, _) = polling_handshake(&app).await;
    assert_eq!(post(&app, &sid, "40").await, (200, "ok".to_owned()));
    let packets = poll_for(&app, &sid, &["40{", r#"42["welcome""#, r#"42["history""#]).await;
    assert!(packets[0].starts_with("40{\"sid\""), "{packets:?}");

    // A GET waits; the WebSocket probes; the GET is answered noop.
    let pending = tokio::spawn({
        let url = polling_url(&app, &format!("&sid={sid}"));
        async move {
            reqwest::get(url)
                .await
                .expect("GET")
                .text()
                .await
                .expect("body")
        }
    });
    eventually("the GET waits in the server", || async {
        app.metric("chat_socketio_polls_waiting", &[]).await == 1.0
    })
    .await;
    let (socket, _) = connect_async(ws_url(&app, &format!("&sid={sid}")))
        .await
        .expect("WebSocket");
    let mut ws = Sio { socket, pong: true };
    // A second WebSocket for the same session is refused.
    assert!(
        connect_async(ws_url(&app, &format!("&sid={sid}")))
            .await
            .is_err()
    );
    ws.send("2probe").await;
    assert_eq!(ws.recv().await, "3probe");
    let answered = tokio::time::timeout(PATIENCE, pending)
        .await
        .expect("in time")
        .expect("GET");
    assert_eq!(answered, "6");
    ws.send("5").await;
    ws.send(r#"42["chatMessage",{"text":"over the upgrade"}]"#)
        .await;
    assert_eq!(ws.expect("chatMessage").await["text"], "over the upgrade");

    // Polling is refused once upgraded, and the session carries on.
    let bad = r#"{"code":3,"message":"Bad request"}"#.to_owned();
    assert_eq!(poll(&app, &sid).await, (400, bad.clone()));
    assert_eq!(
        post(&app, &sid, r#"42["chatMessage","x"]"#).await,
        (400, bad)
    );
    ws.send(r#"421["chatMessage","still upgraded"]"#).await;
    let (event, ack) = ws.expect_event_and_ack("chatMessage", 1).await;
    assert_eq!(event["text"], "still upgraded");
    assert_eq!(ack["ok"], true);
}

#[tokio::test]
async fn one_get_at_a_time_and_posts_within_max_payload() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (sid, open) = polling_handshake(&app).await;
    let max = usize::try_from(open["maxPayload"].as_u64().expect("maxPayload")).expect("usize");
    let (status, body) = post(
        &app,
        &sid,
        format!("42[\"chatMessage\",\"{}\"]", "x".repeat(max)),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    // The session is not connected: its first GET waits (for a ping); a second at once ends
    // the session.
    let first = tokio::spawn(poll_owned(app.service.address.clone(), sid.clone()));
    // Parked: the server holds it (and so the session's outlet) before the second comes.
    eventually("the first GET is held", || async {
        app.metric("chat_socketio_polls_waiting", &[]).await == 1.0
    })
    .await;
    let (status, _) = poll(&app, &sid).await;
    assert_eq!(status, 400, "a second GET at once");
    let (status, body) = tokio::time::timeout(PATIENCE, first)
        .await
        .expect("in time")
        .expect("GET");
    assert_eq!(
        (status, body.as_str()),
        (200, "1"),
        "the waiting GET is told the session closed"
    );
    let (status, body) = poll(&app, &sid).await;
    assert_eq!(
        (status, body.as_str()),
        (400, r#"{"code":1,"message":"Session ID unknown"}"#)
    );
}

async fn poll_owned(address: String, sid: String) -> (u16, String) {
    let response = reqwest::get(format!(
        "{address}/socket.io/?EIO=4&transport=polling&sid={sid}"
    ))
    .await
    .expect("GET");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

#[tokio::test]
async fn an_unknown_namespace_gets_the_connect_error_and_binary_is_refused() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut sio, _) = Sio::open(&app).await;
    sio.send("40/admin,").await;
    assert_eq!(
        sio.recv().await,
        r#"44/admin,{"message":"Invalid namespace"}"#
    );
    sio.connect(&json!({})).await;
    // An event with a binary attachment: refused in its ack, the attachment dropped.
    sio.send(r#"451-7["chatMessage",{"_placeholder":true,"num":0}]"#)
        .await;
    sio.socket
        .send(Message::binary(vec![1_u8, 2, 3]))
        .await
        .expect("attachment");
    let refused = sio.expect_ack(7).await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_json", "{refused}");
    // Without an ack: an `error` event. Then the session carries on.
    sio.socket
        .send(Message::binary(vec![4_u8]))
        .await
        .expect("binary");
    assert_eq!(sio.expect("error").await["code"], "invalid_json");
    sio.send(r#"42["dance"]"#).await;
    assert_eq!(sio.expect("error").await["code"], "unknown_type");
    sio.send(r#"42["chatMessage",{"text":"fine"}]"#).await;
    assert_eq!(sio.expect("chatMessage").await["text"], "fine");
    // A packet that does not parse ends the connection, as the specification says.
    sio.send("42[").await;
    while sio.next().await.is_some() {}
}

#[tokio::test]
async fn tokens_in_auth_follow_the_native_rules() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut sio, _) = Sio::open(&app).await;
    sio.send(r#"40{"token":"not-a-token"}"#).await;
    let refused = sio.recv().await;
    let refused: Value =
        serde_json::from_str(refused.strip_prefix("44").expect("CONNECT_ERROR")).expect("JSON");
    assert_eq!(refused["data"]["code"], "invalid_token", "{refused}");
    assert!(refused["message"].is_string());
    let token = token_named("Tess");
    let (welcome, _) = sio
        .connect(&json!({"token": token, "room": "tokens"}))
        .await;
    assert_eq!(
        (welcome["user"].as_str(), welcome["room"].as_str()),
        (Some("Tess"), Some("tokens"))
    );
    assert!(welcome["user_id"].is_i64(), "{welcome}");

    let mut chat = test_chat_settings();
    chat.guests = false;
    let members_only = spawn_tuned(TestBackend::Sqlite, chat).await;
    let (mut guest, _) = Sio::open(&members_only).await;
    guest.send("40").await;
    let refused = guest.recv().await;
    assert!(refused.starts_with("44{"), "{refused}");
    assert!(refused.contains("unauthorized"), "{refused}");
}

#[tokio::test]
async fn socket_io_and_native_clients_share_a_room() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut nina, _) = app.join("mixed", "Nina").await;
    let (mut sam, _) = Sio::open(&app).await;
    let (welcome, _) = sam
        .connect(&json!({"token": token_named("Sam"), "room": "mixed"}))
        .await;
    assert_eq!(welcome["user"], "Sam");
    assert_eq!(nina.expect("userJoined").await["user"], "Sam");

    sam.send(r#"423["chatMessage",{"text":"from Socket.IO","timestamp":"x"}]"#)
        .await;
    let (on_sam, ack) = sam.expect_event_and_ack("chatMessage", 3).await;
    assert_eq!(ack["message"], on_sam, "the ack carries the message");
    let on_nina = nina.expect("chatMessage").await;
    assert_eq!(on_nina["text"], "from Socket.IO");
    assert_eq!(on_nina["id"], on_sam["id"]);

    nina.say("from the WebSocket").await;
    assert_eq!(
        nina.expect("chatMessage").await["text"],
        "from the WebSocket"
    );
    let on_sam = sam.expect("chatMessage").await;
    assert_eq!(
        (on_sam["user"].as_str(), on_sam["text"].as_str()),
        (Some("Nina"), Some("from the WebSocket"))
    );

    // `join` moves Sam: Nina sees him leave, and his history is the other room's.
    sam.send(r#"424["join","elsewhere"]"#).await;
    let history = sam.expect("history").await;
    assert_eq!(history["messages"], json!([]));
    assert_eq!(
        sam.expect_ack(4).await,
        json!({"ok": true, "room": "elsewhere", "user": "Sam"})
    );
    let left = nina.expect("userLeft").await;
    assert_eq!(
        (left["user"].as_str(), left["room"].as_str()),
        (Some("Sam"), Some("mixed"))
    );
}

#[tokio::test]
async fn socket_io_clients_chat_across_instances_over_redis() {
    testing::skip_unless!(Redis);
    let database_url = fresh_database(TestBackend::Sqlite)
        .await
        .expect("a database");
    let chat = test_chat_settings();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let mut settings = test_settings(database_url.clone());
        settings.cache.redis_url = Some(redis_url());
        instances.push(spawn_with(settings, chat.clone()).await);
    }
    let (a, b) = (&instances[0], &instances[1]);
    let (mut on_a, _) = Sio::open(a).await;
    on_a.connect(&json!({"room": "across"})).await;
    let (mut native_b, _) = b.join("across", "Bea").await;
    assert!(on_a.expect("userJoined").await["user"] == "Bea");
    let (mut on_b, _) = Sio::open(b).await;
    let (welcome_b, _) = on_b.connect(&json!({"room": "across"})).await;
    assert_eq!(on_a.expect("userJoined").await["user"], welcome_b["user"]);
    assert_eq!(
        native_b.expect("userJoined").await["user"],
        welcome_b["user"]
    );

    on_a.send(r#"42["chatMessage","from A"]"#).await;
    for event in [
        on_a.expect("chatMessage").await,
        on_b.expect("chatMessage").await,
    ] {
        assert_eq!(event["text"], "from A");
    }
    assert_eq!(native_b.expect("chatMessage").await["text"], "from A");
}

#[tokio::test]
async fn socket_io_clients_share_the_native_budgets_and_connection_cap() {
    let mut chat = test_chat_settings();
    chat.limits = message_budgets_out_of_reach();
    // A burst of three: its CONNECT spends one, as every packet does.
    chat.limits.connection = Rate::new(1, 3);
    chat.limits.connections_per_address = 3;
    let app = spawn_tuned(TestBackend::Sqlite, chat).await;
    let (_native, _) = app.join("capped", "Nat").await;
    let (mut sio, _) = Sio::open(&app).await;
    sio.connect(&json!({"room": "capped"})).await;
    // Its own budget: two left of the burst, then refused in the ack.
    for id in 1..=2 {
        sio.send(&format!(r#"42{id}["chatMessage","m{id}"]"#)).await;
        let (_, ack) = sio.expect_event_and_ack("chatMessage", id).await;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    sio.send(r#"423["chatMessage","m3"]"#).await;
    let refused = sio.expect_ack(3).await;
    assert_eq!(refused["error"]["code"], "rate_limited", "{refused}");
    // The address's cap counts both protocols: a native connection, two sessions, then 429.
    let (sid, _) = polling_handshake(&app).await;
    let response = reqwest::get(polling_url(&app, ""))
        .await
        .expect("handshake");
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(
        connect_async(ws_url(&app, "")).await.is_err(),
        "a WebSocket session too"
    );
    // A session that ends gives its slot back.
    post(&app, &sid, "1").await;
    eventually("the closed session's slot is free", || async {
        reqwest::get(polling_url(&app, ""))
            .await
            .is_ok_and(|response| response.status() == 200)
    })
    .await;
}

#[tokio::test]
async fn a_polling_client_that_stops_fetching_is_cut_off_without_slowing_the_room() {
    let mut chat = test_chat_settings();
    chat.limits = message_budgets_out_of_reach();
    chat.outbound_bytes = 64 * 1024;
    let app = spawn_tuned(TestBackend::Sqlite, chat).await;
    let (sid, _) = polling_handshake(&app).await;
    post(&app, &sid, r#"40{"room":"busy"}"#).await;
    poll_for(&app, &sid, &[r#"42["history""#]).await;
    // It stops fetching; a native client floods the room.
    let (mut sender, _) = app.join("busy", "sender").await;
    let text = "z".repeat(2000);
    let mut sent = 0;
    while app
        .metric("chat_disconnects_total", &[("reason", "slow_consumer")])
        .await
        == 0.0
    {
        sender.say(&text).await;
        assert_eq!(sender.expect("chatMessage").await["text"], text.as_str());
        sent += 1;
        assert!(
            sent <= 1000,
            "the client that stopped fetching was never cut off"
        );
    }
    let (status, body) = poll(&app, &sid).await;
    assert_eq!(
        (status, body.as_str()),
        (400, r#"{"code":1,"message":"Session ID unknown"}"#)
    );
    assert_eq!(
        sender.expect("userLeft").await["user"]
            .as_str()
            .map(|user| user.starts_with("guest-")),
        Some(true)
    );
}

#[tokio::test]
async fn the_client_bundle_is_served_compressed_and_cacheable() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let vendored = include_bytes!("../../../../vendor/socket.io-client/socket.io.min.js");
    let plain_client = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client");
    let url = format!("{}/socket.io/socket.io.js", app.service.address);
    let plain = plain_client.get(&url).send().await.expect("GET");
    assert_eq!(plain.status(), 200);
    let headers = plain.headers().clone();
    assert_eq!(
        headers["content-type"],
        "application/javascript; charset=utf-8"
    );
    assert_eq!(headers["cache-control"], "public, max-age=86400");
    assert!(headers.get("content-encoding").is_none());
    let etag = headers["etag"].to_str().expect("etag").to_owned();
    assert_eq!(&plain.bytes().await.expect("body")[..], vendored);

    let gzipped = plain_client
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("GET");
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    assert_eq!(gzipped.headers()["vary"], "Accept-Encoding");
    // Another representation, another tag: each strong tag a hash of the bytes it promises.
    let gzip_etag = gzipped.headers()["etag"].to_str().expect("etag").to_owned();
    let compressed = gzipped.bytes().await.expect("body");
    assert!(
        compressed.len() < vendored.len() / 2,
        "{} bytes",
        compressed.len()
    );
    let fnv1a = |bytes: &[u8]| {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    assert_eq!(etag, format!("\"{:016x}\"", fnv1a(vendored)));
    assert_eq!(gzip_etag, format!("\"{:016x}-gzip\"", fnv1a(&compressed)));

    // `If-None-Match` matches the tag of the representation asked for, and only that one.
    let revalidate = |tag: &str, gzip: bool| {
        let mut request = plain_client.get(&url).header("if-none-match", tag);
        if gzip {
            request = request.header("accept-encoding", "gzip");
        }
        async move { request.send().await.expect("GET") }
    };
    for (tag, gzip) in [(&etag, false), (&gzip_etag, true)] {
        let revalidated = revalidate(tag, gzip).await;
        assert_eq!(revalidated.status(), 304, "{tag} gzip: {gzip}");
        assert_eq!(revalidated.headers()["etag"].to_str().expect("etag"), tag);
        let weak = revalidate(&format!("W/{tag}"), gzip).await;
        assert_eq!(weak.status(), 304, "weak {tag} gzip: {gzip}");
    }
    for (tag, gzip) in [(&etag, true), (&gzip_etag, false)] {
        let other = revalidate(tag, gzip).await;
        assert_eq!(other.status(), 200, "{tag} gzip: {gzip}");
        let expected = if gzip { &gzip_etag } else { &etag };
        assert_eq!(other.headers()["etag"].to_str().expect("etag"), expected);
    }
    let map = plain_client
        .get(format!(
            "{}/socket.io/socket.io.min.js.map",
            app.service.address
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(map.status(), 200);
}
