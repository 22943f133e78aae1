//! The protocol's events, their contents and their order; rooms isolated; history.

use serde_json::Value;
use testing::TestBackend;

use crate::helpers::{
    ChatApp, Client, eventually, message_budgets_out_of_reach, spawn_app, spawn_tuned, spawn_with,
    test_chat_settings, token_of,
};

fn is_uuid(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
}

fn is_timestamp(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|ts| chrono::DateTime::parse_from_rfc3339(ts).is_ok())
}

#[tokio::test]
async fn welcome_then_history_then_user_joined_to_the_others_only() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let authorization = format!("Bearer {}", token_of(1, "alice"));
    let mut alice = Client::connect_with(
        &app.ws_url("lobby", "alice"),
        &[("authorization", authorization.as_str())],
    )
    .await
    .expect("accepted");
    let welcome = alice.expect("welcome").await;
    assert_eq!(welcome["room"], "lobby");
    assert_eq!(welcome["user"], "alice");
    assert!(
        welcome["message"]
            .as_str()
            .is_some_and(|m| m.contains("alice")),
        "{welcome}"
    );
    let history = alice.expect("history").await;
    assert_eq!(history["messages"], serde_json::json!([]));

    let (mut bob, _) = app.join("lobby", "bob").await;
    let joined = alice.expect("userJoined").await;
    assert_eq!(joined["user"], "bob");
    assert_eq!(joined["room"], "lobby");
    assert!(
        joined["message"]
            .as_str()
            .is_some_and(|m| m.contains("bob"))
    );

    // Bob's first event after welcome and history is his own message: he did not get his
    // own userJoined.
    bob.say("hello").await;
    assert_eq!(bob.expect("chatMessage").await["text"], "hello");
    assert_eq!(alice.expect("chatMessage").await["text"], "hello");
}

#[tokio::test]
async fn a_message_reaches_everyone_in_the_room_with_a_server_id_and_timestamp() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut alice, _) = app.join("general", "alice").await;
    let (mut bob, _) = app.join("general", "bob").await;
    alice.expect("userJoined").await;
    let (mut carol, _) = app.join("general", "carol").await;
    alice.expect("userJoined").await;
    bob.expect("userJoined").await;

    // A client-sent id or timestamp is ignored: the server's are used.
    alice
        .send_json(serde_json::json!({
            "type": "chatMessage", "text": "hi <b>all</b>", "id": "mine", "timestamp": "yesterday"
        }))
        .await;
    let mut seen = Vec::new();
    for client in [&mut alice, &mut bob, &mut carol] {
        let message = client.expect("chatMessage").await;
        assert_eq!(message["text"], "hi <b>all</b>");
        assert_eq!(message["user"], "alice");
        assert_eq!(message["room"], "general");
        assert!(is_uuid(&message["id"]), "{message}");
        assert!(is_timestamp(&message["timestamp"]), "{message}");
        seen.push(message);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1], seen[2]);

    // Messages keep the order they were sent in.
    for n in 0..5 {
        bob.say(&format!("n{n}")).await;
    }
    for client in [&mut alice, &mut bob, &mut carol] {
        for n in 0..5 {
            assert_eq!(client.expect("chatMessage").await["text"], format!("n{n}"));
        }
    }
}

#[tokio::test]
async fn user_left_is_sent_on_a_clean_close_and_on_a_dropped_connection() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut alice, _) = app.join("general", "alice").await;
    let (bob, _) = app.join("general", "bob").await;
    alice.expect("userJoined").await;
    let (carol, _) = app.join("general", "carol").await;
    alice.expect("userJoined").await;

    bob.close().await;
    let left = alice.expect("userLeft").await;
    assert_eq!(left["user"], "bob");
    assert_eq!(left["room"], "general");
    assert!(left["message"].as_str().is_some_and(|m| m.contains("bob")));

    // No close frame at all: the TCP connection just goes.
    drop(carol);
    let left = alice.expect("userLeft").await;
    assert_eq!(left["user"], "carol");
    eventually("the connections gauge counts alice alone", || async {
        app.metric("chat_open_connections", &[]).await == 1.0
    })
    .await;
}

#[tokio::test]
async fn rooms_are_isolated_from_each_other() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut red, _) = app.join("red", "r1").await;
    let (mut blue, _) = app.join("blue", "b1").await;
    let (mut blue2, _) = app.join("blue", "b2").await;
    blue.expect("userJoined").await;

    red.say("for red only").await;
    // Red's own copy proves the room's fan-out has run.
    assert_eq!(red.expect("chatMessage").await["text"], "for red only");
    blue2.say("for blue").await;
    // Blue's next event is blue's message: red's never came.
    assert_eq!(blue.expect("chatMessage").await["text"], "for blue");
    assert_eq!(blue2.expect("chatMessage").await["text"], "for blue");

    // History is per room too.
    let (_, history) = app.join("blue", "b3").await;
    let texts: Vec<&str> = history.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, vec!["for blue"]);
}

#[tokio::test]
async fn account_names_are_sanitised_and_rooms_checked() {
    let app = spawn_app(TestBackend::Sqlite).await;
    // The account's name, control characters dropped and trimmed; the room left empty is the
    // default one.
    let authorization = format!("Bearer {}", token_of(8, "  al\u{7}ice "));
    let mut client = Client::connect_with(
        &format!(
            "{}/chat/ws?name=bob&room=",
            app.service.address.replace("http://", "ws://")
        ),
        &[("authorization", authorization.as_str())],
    )
    .await
    .expect("accepted");
    let welcome = client.expect("welcome").await;
    assert_eq!(welcome["user"], "alice");
    assert_eq!(welcome["room"], "general", "the default room");

    let mut guest = Client::connect(&format!(
        "{}/chat/ws",
        app.service.address.replace("http://", "ws://")
    ))
    .await;
    let welcome = guest.expect("welcome").await;
    let name = welcome["user"].as_str().expect("a name");
    assert!(
        name.starts_with("guest-") && name.len() == 10,
        "a generated name: {name}"
    );

    for bad_room in ["a%20b", "%3Cscript%3E", &"r".repeat(65)] {
        let response = app
            .service
            .get(&format!("/chat/ws?room={bad_room}&name=x"))
            .await;
        assert_eq!(response.status(), 400, "room {bad_room}");
        assert_eq!(testing::error_code(response).await, "bad_request");
    }
    // A plain GET (no upgrade) is refused with the JSON error body.
    let response = app.service.get("/chat/ws?room=general").await;
    assert_eq!(response.status(), 400);
    assert_eq!(testing::error_code(response).await, "bad_request");
}

#[tokio::test]
async fn the_rooms_endpoint_counts_clients_online() {
    let app = spawn_app(TestBackend::Sqlite).await;
    assert_eq!(app.rooms().await, serde_json::json!([]));
    let (mut a1, _) = app.join("alpha", "a1").await;
    let (a2, _) = app.join("alpha", "a2").await;
    a1.expect("userJoined").await;
    let (_b1, _) = app.join("beta", "b1").await;
    assert_eq!(
        app.rooms().await,
        serde_json::json!([{"room": "alpha", "online": 2}, {"room": "beta", "online": 1}])
    );
    a2.close().await;
    a1.expect("userLeft").await;
    eventually("alpha counts one client", || async {
        app.online("alpha").await == 1
    })
    .await;
    drop(a1);
    eventually("alpha is no longer listed", || async {
        app.rooms().await == serde_json::json!([{"room": "beta", "online": 1}])
    })
    .await;
}

async fn history_holds_the_last_50_messages_oldest_first(backend: TestBackend) {
    let mut chat = test_chat_settings();
    chat.limits = message_budgets_out_of_reach();
    let app = spawn_tuned(backend, chat).await;
    let (mut alice, history) = app.join("general", "alice").await;
    assert!(history.is_empty());
    for n in 1..=55 {
        alice.say(&format!("m{n}")).await;
    }
    let mut sent = Vec::new();
    for _ in 1..=55 {
        sent.push(alice.expect("chatMessage").await);
    }
    let (_, history) = app.join("general", "bob").await;
    assert_eq!(history.len(), 50);
    assert_eq!(history[0]["text"], "m6");
    assert_eq!(history[49]["text"], "m55");
    // History entries are the delivered messages, field for field (without the type).
    let mut last = sent[54].clone();
    last.as_object_mut().expect("object").remove("type");
    assert_eq!(history[49], last);
}

async fn history_survives_a_restart(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let settings = app.service.settings.clone();
    let chat = app.chat.clone();
    let (mut alice, _) = app.join("general", "alice").await;
    alice.say("before the restart").await;
    alice.expect("chatMessage").await;
    app.stop().await;

    let app = spawn_with(settings, chat).await;
    let (_, history) = app.join("general", "bob").await;
    let texts: Vec<&str> = history.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, vec!["before the restart"]);
    assert_eq!(history[0]["user"], "alice");
}

async fn history_is_capped_per_room(backend: TestBackend) {
    let mut chat = test_chat_settings();
    chat.history_cap = 3;
    let app = spawn_tuned(backend, chat).await;
    let (mut alice, _) = app.join("capped", "alice").await;
    let (mut bob, _) = app.join("other", "bob").await;
    for n in 1..=5 {
        alice.say(&format!("a{n}")).await;
        alice.expect("chatMessage").await;
    }
    bob.say("b1").await;
    bob.expect("chatMessage").await;
    let (_, capped) = app.join("capped", "carol").await;
    let texts: Vec<&str> = capped.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, vec!["a3", "a4", "a5"]);
    let (_, other) = app.join("other", "dave").await;
    assert_eq!(other.len(), 1, "another room's messages are not pruned");
}

testing::on_both_backends!(
    history_holds_the_last_50_messages_oldest_first,
    history_survives_a_restart,
    history_is_capped_per_room,
);

/// A message sent while a client joins is delivered to it once: in history or live.
#[tokio::test]
async fn a_message_racing_a_join_arrives_exactly_once() {
    message_racing_a_join(test_chat_settings()).await;
}

/// The same when the room coalesces its deliveries (a window of 2 ms a member, where the
/// defaults wait only in rooms of 100 or more).
#[tokio::test]
async fn a_message_racing_a_join_arrives_exactly_once_when_deliveries_are_coalesced() {
    let mut chat = test_chat_settings();
    chat.coalesce_per_member = std::time::Duration::from_millis(2);
    message_racing_a_join(chat).await;
}

/// Coalesced deliveries keep the order of events and still skip each event's subject.
#[tokio::test]
async fn coalesced_deliveries_keep_order_and_skip_their_subject() {
    let mut chat = test_chat_settings();
    chat.coalesce_per_member = std::time::Duration::from_millis(5);
    let app = spawn_tuned(TestBackend::Sqlite, chat).await;
    let (mut alice, _) = app.join("batch", "alice").await;
    let (mut bob, _) = app.join("batch", "bob").await;
    assert_eq!(alice.expect("userJoined").await["user"], "bob");
    for n in 0..5 {
        bob.say(&format!("b{n}")).await;
    }
    for client in [&mut alice, &mut bob] {
        for n in 0..5 {
            assert_eq!(client.expect("chatMessage").await["text"], format!("b{n}"));
        }
    }
    drop(bob);
    assert_eq!(alice.expect("userLeft").await["user"], "bob");
}

async fn message_racing_a_join(mut chat: chat_service::Settings) {
    chat.limits = message_budgets_out_of_reach();
    let app = spawn_tuned(TestBackend::Sqlite, chat).await;
    let (mut alice, _) = app.join("race", "alice").await;
    let sender = tokio::spawn(async move {
        for n in 0..200 {
            alice.say(&format!("r{n}")).await;
        }
        let mut received = 0;
        while received < 200 {
            // The late joiner's userJoined comes in between.
            if alice.next_event().await["type"] == "chatMessage" {
                received += 1;
            }
        }
        alice
    });
    let late = joiner(&app).await;
    let _alice = sender.await.expect("sender");
    // Everything the late joiner saw (history, then live), in order, without duplicates,
    // ending with the last message.
    let numbers: Vec<u32> = late
        .iter()
        .map(|text| text.trim_start_matches('r').parse().expect("a number"))
        .collect();
    assert!(
        numbers.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "{numbers:?}"
    );
    assert_eq!(numbers.last(), Some(&199));
}

/// Joins mid-flood and collects the texts of history and live messages until `r199`.
async fn joiner(app: &ChatApp) -> Vec<String> {
    let (mut late, history) = app.join("race", "late").await;
    let mut texts: Vec<String> = history
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect();
    while texts.last().map(String::as_str) != Some("r199") {
        let event = late.next_event().await;
        if event["type"] == "chatMessage" {
            texts.push(event["text"].as_str().expect("text").to_owned());
        }
    }
    texts
}
