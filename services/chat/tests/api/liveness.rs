//! Heartbeat, slow consumers, shutdown: connections that must end, end, and say why.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use testing::TestBackend;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    Client, PATIENCE, eventually, message_budgets_out_of_reach, spawn_app, spawn_tuned,
    test_chat_settings,
};

fn short_heartbeat() -> chat_service::Settings {
    let mut chat = test_chat_settings();
    chat.ping_interval = Duration::from_millis(100);
    // Long enough that a test runner starved for a moment still answers in time.
    chat.pong_timeout = Duration::from_millis(1000);
    chat
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed_with_1008() {
    let app = spawn_tuned(TestBackend::Sqlite, short_heartbeat()).await;
    let (mut watcher, _) = app.join("general", "watcher").await;
    // The watcher reads from now on, in its own task (and so answers its pings however long
    // the silent one takes to join), until it sees someone leave.
    let watching = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let event = watcher.next_event().await;
            seen.push(event["type"].as_str().unwrap_or_default().to_owned());
            if event["type"] == "userLeft" {
                return (seen, event);
            }
        }
    });
    // The silent client reads nothing once it has joined, so it never answers a ping.
    let (mut silent, _) = app.join("general", "silent").await;
    let (seen, left) = tokio::time::timeout(PATIENCE, watching)
        .await
        .expect("someone leaves in time")
        .expect("the watcher reads");
    assert_eq!(seen, ["userJoined", "userLeft"]);
    assert_eq!(left["user"], "silent");
    assert_eq!(
        app.metric("chat_disconnects_total", &[("reason", "heartbeat")])
            .await,
        1.0
    );
    // What the silent client finds when it reads at last: pings, then the close frame.
    let mut pings = 0;
    let code = loop {
        match tokio::time::timeout(PATIENCE, silent.socket.next())
            .await
            .expect("frames in time")
        {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, 1008);
    assert!(pings >= 2, "pinged before giving up ({pings})");
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() {
    let app = spawn_tuned(TestBackend::Sqlite, short_heartbeat()).await;
    let (mut alice, _) = app.join("general", "alice").await;
    // Reading answers pings (tungstenite pongs automatically). Stay for 3 pong timeouts.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(3000);
    while let Ok(frame) = tokio::time::timeout_at(until, alice.socket.next()).await {
        match frame {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 10, "a ping every 100 ms ({pings})");
    alice.say("still connected").await;
    assert_eq!(alice.expect("chatMessage").await["text"], "still connected");
    assert_eq!(
        app.metric("chat_disconnects_total", &[("reason", "heartbeat")])
            .await,
        0.0
    );
}

#[tokio::test]
async fn a_client_that_does_not_read_is_cut_off_with_1013_without_slowing_the_room() {
    let mut chat = test_chat_settings();
    chat.limits = message_budgets_out_of_reach();
    let app = spawn_tuned(TestBackend::Sqlite, chat).await;
    let (mut reader, _) = app.join("busy", "reader").await;
    // Signed in through the query, the one place this client's handshake can carry a token.
    let url = format!(
        "{}&access_token={}",
        app.ws_url("busy", "slow"),
        crate::helpers::token_named("slow")
    );
    // A small receive buffer, so the server's writes stall soon after the client stops reading.
    let mut slow = Client::connect_with_receive_buffer(&url, Some(4096)).await;
    slow.expect("welcome").await;
    slow.expect("history").await;
    reader.expect("userJoined").await;

    let (sender, _) = app.join("busy", "sender").await;
    reader.expect("userJoined").await;
    let (mut sink, mut sender_stream) = sender.socket.split();
    // The sender keeps reading everything (its own copies) in the background.
    let drain_sender =
        tokio::spawn(async move { while let Some(Ok(_)) = sender_stream.next().await {} });
    let frame = serde_json::json!({"type": "chatMessage", "text": "z".repeat(2000)}).to_string();
    let (mut sent, mut slow_left) = (0, false);
    while app
        .metric("chat_disconnects_total", &[("reason", "slow_consumer")])
        .await
        == 0.0
    {
        for _ in 0..50 {
            sink.send(Message::text(frame.clone())).await.expect("send");
        }
        sent += 50;
        assert!(sent <= 20_000, "the slow client was never cut off");
        // The reader keeps up with every message meanwhile, and may see the slow one leave.
        let mut got = 0;
        while got < 50 {
            let event = reader.next_event().await;
            match event["type"].as_str() {
                Some("chatMessage") => got += 1,
                Some("userLeft") => {
                    assert_eq!(event["user"], "slow");
                    slow_left = true;
                }
                _ => panic!("unexpected {event}"),
            }
        }
    }
    // The room goes on for the others: the reader hears the slow one leave, and new messages.
    while !slow_left {
        let event = reader.next_event().await;
        if event["type"] == "userLeft" {
            assert_eq!(event["user"], "slow");
            slow_left = true;
        }
    }
    sink.send(Message::text(
        serde_json::json!({"type": "chatMessage", "text": "after"}).to_string(),
    ))
    .await
    .expect("send");
    loop {
        if reader.expect("chatMessage").await["text"] == "after" {
            break;
        }
    }
    eventually("the slow client no longer counts as online", || async {
        app.online("busy").await == 2
    })
    .await;

    // When it reads at last, it gets what had been written before the cut, then 1013; never
    // all that was sent.
    let mut received = 0;
    let code = loop {
        match tokio::time::timeout(PATIENCE, slow.socket.next())
            .await
            .expect("frames in time")
        {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, 1013);
    assert!(received < sent, "{received} of {sent}");
    drain_sender.abort();
}

#[tokio::test]
async fn shutdown_closes_every_client_with_1001_and_refuses_new_ones() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut alice, _) = app.join("general", "alice").await;
    let (mut bob, _) = app.join("other", "bob").await;
    let address = app.service.address.clone();
    let stopping = tokio::spawn(app.stop());
    assert_eq!(alice.expect_close().await, 1001);
    assert_eq!(bob.expect_close().await, 1001);
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .expect("the server stops promptly")
        .expect("stopped cleanly");
    assert!(
        reqwest::get(format!("{address}/healthz")).await.is_err(),
        "nothing listens any more"
    );
}
