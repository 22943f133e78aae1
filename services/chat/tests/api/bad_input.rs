//! Bad input never kills anyone else's connection: refused events get an `error`; oversized
//! frames close only their own connection (1009); floods are rate limited.

use futures_util::SinkExt;
use serde_json::json;
use testing::TestBackend;
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    },
};

use crate::helpers::{Client, spawn_app};

#[tokio::test]
async fn invalid_json_unknown_types_and_binary_frames_get_an_error_and_the_connection_stays() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut alice, _) = app.join("general", "alice").await;
    let (mut bob, _) = app.join("general", "bob").await;
    alice.expect("userJoined").await;

    alice.send_text("this is not JSON").await;
    alice.expect_error("invalid_json").await;
    alice.send_text("[1, 2]").await;
    alice.expect_error("invalid_json").await;
    alice.send_json(json!({"text": "no type"})).await;
    alice.expect_error("invalid_json").await;
    alice.send_json(json!({"type": "dance"})).await;
    let error = alice.expect_error("unknown_type").await;
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("dance"))
    );
    alice
        .socket
        .send(Message::binary(vec![1_u8, 2, 3]))
        .await
        .expect("send binary");
    alice.expect_error("invalid_json").await;

    alice.say("still here").await;
    assert_eq!(alice.expect("chatMessage").await["text"], "still here");
    // Bob saw none of the refused frames.
    assert_eq!(bob.expect("chatMessage").await["text"], "still here");
}

#[tokio::test]
async fn texts_must_be_1_to_2000_characters() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut alice, _) = app.join("general", "alice").await;
    let (mut bob, _) = app.join("general", "bob").await;
    alice.expect("userJoined").await;

    for bad in [
        json!({"type": "chatMessage", "text": ""}),
        json!({"type": "chatMessage", "text": "   \n"}),
        json!({"type": "chatMessage"}),
        json!({"type": "chatMessage", "text": 42}),
        json!({"type": "chatMessage", "text": "x".repeat(2001)}),
        json!({"type": "chatMessage", "text": "é".repeat(2001)}),
    ] {
        alice.send_json(bad).await;
        alice.expect_error("validation_failed").await;
    }
    // 2000 characters (4000 bytes) is fine.
    let longest = "é".repeat(2000);
    alice.say(&longest).await;
    assert_eq!(alice.expect("chatMessage").await["text"], longest.as_str());
    assert_eq!(bob.expect("chatMessage").await["text"], longest.as_str());
}

#[tokio::test]
async fn a_frame_over_64_kib_closes_that_connection_with_1009_only() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut alice, _) = app.join("general", "alice").await;
    let (mut bob, _) = app.join("general", "bob").await;
    alice.expect("userJoined").await;

    // Exactly 64 KiB is read (and refused as too long a text), the connection stays.
    let prefix = r#"{"type":"chatMessage","text":""#;
    let padding = 64 * 1024 - prefix.len() - 2;
    let at_limit = format!("{prefix}{}\"}}", "x".repeat(padding));
    assert_eq!(at_limit.len(), 64 * 1024);
    bob.send_text(at_limit).await;
    bob.expect_error("validation_failed").await;

    let over = format!("{prefix}{}\"}}", "x".repeat(padding + 1));
    bob.send_text(over).await;
    assert_eq!(bob.expect_close().await, 1009);

    // Alice is unaffected: she hears bob leave and the room works.
    assert_eq!(alice.expect("userLeft").await["user"], "bob");
    alice.say("after").await;
    assert_eq!(alice.expect("chatMessage").await["text"], "after");
    assert_eq!(
        app.metric("chat_disconnects_total", &[("reason", "frame_too_large")])
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_fragmented_message_over_64_kib_closes_with_1009() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut alice, _) = app.join("general", "alice").await;
    // Five fragments of 16 KiB: each frame is small, the message is 80 KiB.
    let chunk = "y".repeat(16 * 1024);
    alice
        .socket
        .send(Message::Frame(Frame::message(
            chunk.clone(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await
        .expect("first fragment");
    for n in 0..4 {
        alice
            .socket
            .send(Message::Frame(Frame::message(
                chunk.clone(),
                OpCode::Data(Data::Continue),
                n == 3,
            )))
            .await
            .expect("continuation");
    }
    assert_eq!(alice.expect_close().await, 1009);
}

#[tokio::test]
async fn more_than_10_messages_a_second_are_dropped_with_rate_limited() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut alice, _) = app.join("general", "alice").await;
    let (mut bob, _) = app.join("general", "bob").await;
    alice.expect("userJoined").await;

    let started = std::time::Instant::now();
    for n in 0..40 {
        alice.say(&format!("flood {n}")).await;
    }
    let (mut delivered, mut limited) = (0, 0);
    for _ in 0..40 {
        let event = alice.next_event().await;
        match event["type"].as_str() {
            Some("chatMessage") => delivered += 1,
            Some("error") => {
                assert_eq!(event["code"], "rate_limited", "{event}");
                limited += 1;
            }
            _ => panic!("unexpected {event}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The burst of 20, plus 10 per second of the time the flood took.
    let allowed = 20 + (elapsed * 10.0).ceil() as i32;
    assert!(
        (20..=allowed).contains(&delivered),
        "{delivered} delivered in {elapsed:.2} s"
    );
    assert_eq!(delivered + limited, 40);
    // Bob got exactly the accepted ones, and the connection still works.
    bob.say("bob's turn").await;
    let mut bob_saw = 0;
    loop {
        let event = bob.expect("chatMessage").await;
        if event["text"] == "bob's turn" {
            break;
        }
        bob_saw += 1;
    }
    assert_eq!(bob_saw, delivered);
    assert_eq!(
        app.metric("chat_client_errors_total", &[("code", "rate_limited")])
            .await,
        f64::from(limited)
    );
}

#[tokio::test]
async fn a_client_that_closes_gets_a_normal_close_back() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut alice, _) = app.join("general", "alice").await;
    alice
        .socket
        .send(Message::Close(None))
        .await
        .expect("close");
    assert_eq!(alice.expect_close().await, 1000);
    let _ = Client::connect(&app.ws_url("general", "again")).await;
}
