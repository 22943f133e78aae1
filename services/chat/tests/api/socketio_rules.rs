//! The native rules over Socket.IO, where `/chat/ws`'s tests cannot reach: every packet spends
//! the budgets (a flood of `CONNECT`s to an unknown namespace too), an address's and an
//! account's budgets span their sessions, names are unique and cleaned, a WebSocket frame over
//! `maxPayload` closes with 1009, and a polling client that stops answering pings is cut off.

use std::time::Duration;

use chat_service::limits::Rate;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use testing::TestBackend;
use tokio_tungstenite::tungstenite::{Message, protocol::CloseFrame};

use crate::{
    helpers::{
        PATIENCE, message_budgets_out_of_reach, spawn_app, spawn_tuned, test_chat_settings,
        token_of,
    },
    socketio::{Sio, poll, poll_for, polling_handshake, post},
};

/// Sends `40/admin,` `count` times at once; the answers' payloads, in order.
async fn connect_unknown_namespace(sio: &mut Sio, count: usize) -> Vec<Value> {
    for _ in 0..count {
        sio.send("40/admin,").await;
    }
    let mut answers = Vec::new();
    for _ in 0..count {
        let answer = sio.recv().await;
        let payload = answer
            .strip_prefix("44/admin,")
            .unwrap_or_else(|| panic!("a CONNECT_ERROR of /admin, got {answer}"));
        answers.push(serde_json::from_str(payload).expect("JSON"));
    }
    answers
}

#[tokio::test]
async fn a_flood_of_connects_to_an_unknown_namespace_spends_the_budget_like_events() {
    let mut chat = test_chat_settings();
    chat.limits = message_budgets_out_of_reach();
    chat.limits.connection = Rate::new(1, 3);
    let app = spawn_tuned(TestBackend::Sqlite, chat).await;
    let (mut sio, _) = Sio::open(&app).await;
    let started = std::time::Instant::now();
    let answers = connect_unknown_namespace(&mut sio, 8).await;
    let refill = started.elapsed().as_secs() as usize + 1;
    let invalid = answers
        .iter()
        .filter(|answer| **answer == json!({"message": "Invalid namespace"}))
        .count();
    let limited: Vec<&Value> = answers
        .iter()
        .filter(|answer| answer["data"]["code"] == "rate_limited")
        .collect();
    assert!(invalid >= 3 && invalid <= 3 + refill, "{answers:?}");
    assert_eq!(invalid + limited.len(), 8, "{answers:?}");
    assert_eq!(
        app.metric("chat_rate_limited_total", &[("scope", "connection")])
            .await,
        limited.len() as f64
    );
    // The main namespace's CONNECT spends the same budget: refused too, in its CONNECT_ERROR,
    // unless the budget refilled (one unit a second) enough meanwhile for one more.
    sio.send("40{}").await;
    let answer = sio.recv().await;
    let given = 3 + started.elapsed().as_secs() as usize;
    match answer.strip_prefix("44") {
        Some(payload) => {
            let payload: Value = serde_json::from_str(payload).expect("JSON");
            assert_eq!(payload["data"]["code"], "rate_limited", "{answer}");
        }
        None => assert!(
            invalid < given,
            "let through with the budget spent ({invalid} of {given}): {answer}"
        ),
    }
}

#[tokio::test]
async fn noop_packets_spend_the_budget_without_counting_as_rate_limited() {
    let mut chat = test_chat_settings();
    chat.limits = message_budgets_out_of_reach();
    chat.limits.connection = Rate::new(1, 3);
    let app = spawn_tuned(TestBackend::Sqlite, chat).await;
    let (mut sio, _) = Sio::open(&app).await;
    sio.connect(&json!({"room": "noops"})).await;
    // The CONNECT spent one unit of three; ten noops spend the rest and are never refused.
    let started = std::time::Instant::now();
    for _ in 0..10 {
        sio.send("6").await;
    }
    sio.send(r#"421["chatMessage","after the noops"]"#).await;
    let ack = loop {
        let packet = sio.recv().await;
        if let Some(rest) = packet.strip_prefix("431") {
            break serde_json::from_str::<Value>(rest).expect("JSON")[0].clone();
        }
    };
    let refused = ack["ok"] == false;
    if refused {
        assert_eq!(ack["error"]["code"], "rate_limited", "{ack}");
    } else {
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "the noops spent nothing: {ack}"
        );
    }
    assert_eq!(
        app.metric("chat_rate_limited_total", &[("scope", "connection")])
            .await,
        if refused { 1.0 } else { 0.0 },
        "only the message counts"
    );
}

/// Sends `count` messages with acks from each of `sessions` at once; the refusals' messages
/// (every other message is delivered).
async fn flood(sessions: &mut [Sio], count: u64) -> Vec<String> {
    for sio in sessions.iter_mut() {
        for id in 1..=count {
            sio.send(&format!(r#"42{id}["chatMessage","m{id}"]"#)).await;
        }
    }
    let mut refusals = Vec::new();
    for sio in sessions.iter_mut() {
        let mut acks = 0;
        while acks < count {
            let packet = sio.recv().await;
            let Some(rest) = packet.strip_prefix("43") else {
                continue;
            };
            acks += 1;
            let start = rest.find('[').expect("an ack's arguments");
            let argument: Value = serde_json::from_str(&rest[start..]).expect("JSON");
            if argument[0]["ok"] == false {
                assert_eq!(argument[0]["error"]["code"], "rate_limited", "{packet}");
                refusals.push(
                    argument[0]["error"]["message"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                );
            }
        }
    }
    refusals
}

#[tokio::test]
async fn socket_io_sessions_share_their_address_and_account_budgets() {
    let mut chat = test_chat_settings();
    chat.limits = message_budgets_out_of_reach();
    chat.limits.address = Rate::new(1, 6);
    chat.limits.account = Rate::new(1, 4);
    let app = spawn_tuned(TestBackend::Sqlite, chat).await;
    // Two guests from one address (each CONNECT spends one of its six): ten messages.
    let mut guests = Vec::new();
    for _ in 0..2 {
        let (mut sio, _) = Sio::open_with(&app, &[("x-forwarded-for", "203.0.113.9")]).await;
        sio.connect(&json!({"room": "budgets"})).await;
        guests.push(sio);
    }
    let refusals = flood(&mut guests, 5).await;
    assert!(refusals.len() >= 4, "{refusals:?}");
    assert!(
        refusals.iter().all(|m| m.contains("203.0.113.9")),
        "{refusals:?}"
    );
    // A neighbour at another address is not held back.
    let (mut neighbour, _) = Sio::open_with(&app, &[("x-forwarded-for", "203.0.113.10")]).await;
    neighbour.connect(&json!({"room": "budgets"})).await;
    assert!(
        flood(std::slice::from_mut(&mut neighbour), 1)
            .await
            .is_empty()
    );
    // One account from two addresses: one budget of four.
    let mut tabs = Vec::new();
    for n in 1..=2 {
        let address = format!("192.0.2.{n}");
        let (mut sio, _) = Sio::open_with(&app, &[("x-forwarded-for", &address)]).await;
        sio.connect(&json!({"token": token_of(41, "Tabby"), "room": "budgets"}))
            .await;
        tabs.push(sio);
    }
    let refusals = flood(&mut tabs, 4).await;
    assert!(refusals.len() >= 2, "{refusals:?}");
    assert!(
        refusals.iter().all(|m| m.contains("account")),
        "{refusals:?}"
    );
}

/// Connects a Socket.IO session as account `id` named `name` in `room`; it and its name.
async fn sio_as(app: &crate::helpers::ChatApp, room: &str, id: i64, name: &str) -> (Sio, Value) {
    let (mut sio, _) = Sio::open(app).await;
    let (welcome, _) = sio
        .connect(&json!({"token": token_of(id, name), "room": room}))
        .await;
    (sio, welcome["user"].clone())
}

#[tokio::test]
async fn socket_io_names_are_unique_in_a_room_and_cleaned() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (_alice, name) = sio_as(&app, "general", 1, "Alice").await;
    assert_eq!(name, "Alice");
    let (_second, name) = sio_as(&app, "general", 2, "alice").await;
    assert_eq!(name, "alice (2)");
    let (_tab, name) = sio_as(&app, "general", 1, "Alice").await;
    assert_eq!(name, "Alice", "one account, one name");
    // A right-to-left override and a zero-width space: what is left is shown.
    let (_spoof, name) = sio_as(&app, "general", 5, "\u{202E}ecilA\u{200B}").await;
    assert_eq!(name, "ecilA");
    let (_bob, name) = sio_as(&app, "general", 6, "Bob").await;
    assert_eq!(name, "Bob");
    let (_fake_bob, name) = sio_as(&app, "general", 7, "B\u{200D}o\u{FEFF}b").await;
    assert_eq!(name, "Bob (2)");
}

#[tokio::test]
async fn a_websocket_frame_over_max_payload_closes_the_session_with_1009() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut sio, open) = Sio::open(&app).await;
    sio.connect(&json!({"room": "big"})).await;
    let max = open["maxPayload"].as_u64().expect("maxPayload") as usize;
    // At the limit: read, and refused as too long a text; the session stays.
    let prefix = r#"42["chatMessage",""#;
    let at_limit = format!("{prefix}{}\"]", "x".repeat(max - prefix.len() - 2));
    assert_eq!(at_limit.len(), max);
    sio.send(&at_limit).await;
    assert_eq!(sio.expect("error").await["code"], "validation_failed");
    // One byte more: closed with 1009 (what the Socket.IO server's `ws` does over maxPayload).
    sio.socket
        .send(Message::text(format!("{at_limit} ")))
        .await
        .expect("send");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let code = loop {
        let frame = tokio::time::timeout_at(deadline, sio.socket.next())
            .await
            .expect("the close frame in time");
        match frame {
            Some(Ok(Message::Close(Some(CloseFrame { code, .. })))) => break u16::from(code),
            Some(Ok(Message::Close(None)) | Err(_)) | None => panic!("closed without a code"),
            Some(Ok(_)) => {}
        }
    };
    assert_eq!(code, 1009);
    assert_eq!(
        app.metric("chat_disconnects_total", &[("reason", "frame_too_large")])
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_polling_client_that_misses_pongs_is_cut_off_and_one_that_answers_is_not() {
    let mut chat = test_chat_settings();
    chat.ping_interval = Duration::from_millis(200);
    // Far above a loaded machine's delays, so only silence ends a session.
    chat.pong_timeout = Duration::from_secs(2);
    let app = spawn_tuned(TestBackend::Sqlite, chat.clone()).await;

    // Silent: it polls, never answers a ping, and its session ends.
    let (silent, _) = polling_handshake(&app).await;
    post(&app, &silent, r#"40{"room":"quiet"}"#).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut pings = 0;
    loop {
        let (status, body) = poll(&app, &silent).await;
        if status == 400 || body.split('\x1e').any(|packet| packet == "1") {
            break;
        }
        assert_eq!(status, 200, "{body}");
        pings += body.split('\x1e').filter(|packet| *packet == "2").count();
        assert!(
            tokio::time::Instant::now() < deadline,
            "still open after {pings} pings"
        );
    }
    assert!(pings >= 1, "pinged before being cut off");
    let (status, body) = poll(&app, &silent).await;
    assert_eq!(
        (status, body.as_str()),
        (400, r#"{"code":1,"message":"Session ID unknown"}"#)
    );
    let heartbeats = || app.metric("chat_disconnects_total", &[("reason", "heartbeat")]);
    let cut_off = heartbeats().await;
    assert!(cut_off >= 1.0);

    // Answering (poll_for posts a pong for each ping): alive over several pong timeouts.
    let (alive, _) = polling_handshake(&app).await;
    post(&app, &alive, r#"40{"room":"quiet"}"#).await;
    poll_for(&app, &alive, &[r#"42["history""#]).await;
    let until = tokio::time::Instant::now() + 3 * chat.pong_timeout + chat.ping_interval;
    let mut answered = 0;
    while tokio::time::Instant::now() < until {
        poll_for(&app, &alive, &["2"]).await;
        answered += 1;
    }
    assert!(
        answered >= 3,
        "only {answered} pings in three pong timeouts"
    );
    post(&app, &alive, r#"42["chatMessage","still here"]"#).await;
    poll_for(&app, &alive, &[r#"42["chatMessage""#]).await;
    assert_eq!(heartbeats().await, cut_off, "no other session was cut off");
}
