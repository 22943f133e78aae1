//! Two chat-service instances on one Redis (and one database) share their rooms: messages,
//! joins and leaves cross instances, and `/chat/rooms` counts every instance's clients.

use testing::{TestBackend, fresh_database, redis_url};

use crate::helpers::{ChatApp, eventually, spawn_with, test_chat_settings, test_settings};

/// Two instances on Redis with the same channel prefix and the same database.
async fn two_instances(backend: TestBackend) -> (ChatApp, ChatApp) {
    let database_url = fresh_database(backend).await.expect("a database");
    let chat = test_chat_settings();
    let mut spawn = Vec::new();
    for _ in 0..2 {
        let mut settings = test_settings(database_url.clone());
        settings.cache.redis_url = Some(redis_url());
        spawn.push(spawn_with(settings, chat.clone()).await);
    }
    let second = spawn.pop().expect("two");
    let first = spawn.pop().expect("two");
    (first, second)
}

async fn messages_joins_and_leaves_cross_instances(backend: TestBackend) {
    testing::skip_unless!(Redis);
    let (a, b) = two_instances(backend).await;
    let ready: serde_json::Value = a.service.get("/readyz").await.json().await.expect("JSON");
    assert_eq!(ready["checks"]["pubsub"], "ok", "{ready}");

    let (mut alice, _) = a.join("shared", "alice").await;
    let (mut bob, _) = b.join("shared", "bob").await;
    assert_eq!(alice.expect("userJoined").await["user"], "bob");

    bob.say("from B").await;
    let on_b = bob.expect("chatMessage").await;
    let on_a = alice.expect("chatMessage").await;
    assert_eq!(on_a, on_b, "the same message, id and timestamp, everywhere");
    assert_eq!(on_a["text"], "from B");

    alice.say("from A").await;
    assert_eq!(alice.expect("chatMessage").await["text"], "from A");
    // Bob's next event is alice's message: his own came once, not twice.
    assert_eq!(bob.expect("chatMessage").await["text"], "from A");

    // A room on one instance only is not heard on the other.
    let (mut solo, _) = a.join("only-a", "solo").await;
    solo.say("private").await;
    solo.expect("chatMessage").await;
    alice.say("marker").await;
    assert_eq!(alice.expect("chatMessage").await["text"], "marker");
    assert_eq!(bob.expect("chatMessage").await["text"], "marker");

    // History is shared through the database: a client on B sees what was said on A.
    let (_carol, history) = b.join("shared", "carol").await;
    let texts: Vec<&str> = history.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, vec!["from B", "from A", "marker"]);
    assert_eq!(alice.expect("userJoined").await["user"], "carol");
    assert_eq!(bob.expect("userJoined").await["user"], "carol");

    bob.close().await;
    assert_eq!(alice.expect("userLeft").await["user"], "bob");
}

testing::on_both_backends!(messages_joins_and_leaves_cross_instances);

#[tokio::test]
async fn with_redis_unreachable_a_message_is_stored_but_refused_as_unavailable() {
    let database_url = fresh_database(TestBackend::Sqlite)
        .await
        .expect("a database");
    let mut settings = test_settings(database_url);
    // Nothing listens on port 1.
    settings.cache.redis_url = Some("redis://127.0.0.1:1".to_owned());
    let app = spawn_with(settings, test_chat_settings()).await;
    let (mut alice, _) = app.join("general", "alice").await;
    alice.say("into the void").await;
    let error = alice.expect_error("unavailable").await;
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("stored")),
        "{error}"
    );
    // The connection stays, and the message is in the history for when Redis is back.
    alice.say("again").await;
    alice.expect_error("unavailable").await;
    let (_, history) = app.join("general", "bob").await;
    let texts: Vec<&str> = history.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, vec!["into the void", "again"]);
}

#[tokio::test]
async fn presence_counts_every_instance() {
    testing::skip_unless!(Redis);
    let (a, b) = two_instances(TestBackend::Sqlite).await;
    let (mut alice, _) = a.join("lobby", "alice").await;
    let (bob, _) = b.join("lobby", "bob").await;
    alice.expect("userJoined").await;
    let (_dave, _) = b.join("b-only", "dave").await;
    for app in [&a, &b] {
        eventually("both instances count both clients", || async {
            app.rooms().await
                == serde_json::json!([
                    {"room": "b-only", "online": 1},
                    {"room": "lobby", "online": 2},
                ])
        })
        .await;
    }
    bob.close().await;
    alice.expect("userLeft").await;
    eventually("A counts bob gone", || async {
        a.online("lobby").await == 1
    })
    .await;

    // An instance that stops is forgotten by the others at once (it says goodbye).
    b.stop().await;
    eventually("A forgets B's rooms", || async {
        a.rooms().await == serde_json::json!([{"room": "lobby", "online": 1}])
    })
    .await;

    // A new instance learns the counts of those already running without waiting.
    let mut settings = a.service.settings.clone();
    settings.address.set_port(0);
    let c = spawn_with(settings, a.chat.clone()).await;
    eventually("C hears A's counts", || async {
        c.online("lobby").await == 1
    })
    .await;
}
