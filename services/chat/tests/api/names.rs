//! Names that cannot pass for others: shown in NFC without invisible or direction-changing
//! characters, and unique in a room (caseless): a second account with a taken name gets a
//! suffix, while one account's connections share its name; across instances sharing Redis
//! too, where the name of an instance that died is free once its lease lapses.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chat_service::names::{Holder, RoomNames};
use pubsub::PubSub;
use serde_json::{Value, json};
use testing::{TestBackend, fresh_database, redis_url};

use crate::{
    helpers::{
        ChatApp, Client, PATIENCE, spawn_app, spawn_with, test_chat_settings, test_settings,
        token_of,
    },
    socketio::Sio,
};

/// Account `id` named `name` in `room`: its client and `welcome`, past its `history`.
async fn join_as(app: &ChatApp, room: &str, id: i64, name: &str) -> (Client, Value) {
    let authorization = format!("Bearer {}", token_of(id, name));
    let mut client = Client::connect_with(
        &app.ws_url(room, "x"),
        &[("authorization", authorization.as_str())],
    )
    .await
    .unwrap_or_else(|refused| panic!("{name:?} refused: {refused:?}"));
    let welcome = client.expect("welcome").await;
    client.expect("history").await;
    (client, welcome)
}

#[tokio::test]
async fn a_second_alice_in_a_room_gets_a_suffix_and_one_account_keeps_its_name() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let (mut alice, welcome) = join_as(&app, "general", 1, "Alice").await;
    assert_eq!(welcome["user"], "Alice");
    let (_other, welcome) = join_as(&app, "general", 2, "alice").await;
    assert_eq!(welcome["user"], "alice (2)");
    assert_eq!(welcome["user_id"], 2);
    let joined = alice.expect("userJoined").await;
    assert_eq!(joined["user"], "alice (2)");
    // Full-width letters are the same name once compatibility-normalised.
    let (_wide, welcome) = join_as(
        &app,
        "general",
        3,
        "\u{FF21}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}",
    )
    .await;
    assert_eq!(
        welcome["user"],
        "\u{FF21}\u{FF4C}\u{FF49}\u{FF43}\u{FF45} (3)"
    );
    // Alice's second tab is still Alice.
    let (mut tab, welcome) = join_as(&app, "general", 1, "Alice").await;
    assert_eq!(welcome["user"], "Alice");
    tab.say("from the other tab").await;
    let message = tab.expect("chatMessage").await;
    assert_eq!(message["user"], "Alice");
    assert_eq!(message["user_id"], 1);
    // Another room is another namespace.
    let (_elsewhere, welcome) = join_as(&app, "other", 2, "alice").await;
    assert_eq!(welcome["user"], "alice");
}

#[tokio::test]
async fn invisible_and_direction_changing_characters_are_stripped_and_names_are_nfc() {
    let app = spawn_app(TestBackend::Sqlite).await;
    // Reads as "Alice" on screen: a right-to-left override, then "ecilA".
    let (mut spoof, welcome) = join_as(&app, "general", 5, "\u{202E}ecilA\u{200B}").await;
    assert_eq!(welcome["user"], "ecilA");
    spoof.say("hi").await;
    assert_eq!(spoof.expect("chatMessage").await["user"], "ecilA");
    // Zero-width characters inside a name do not make it another name.
    let (_bob, welcome) = join_as(&app, "general", 6, "Bob").await;
    assert_eq!(welcome["user"], "Bob");
    let (_fake_bob, welcome) = join_as(&app, "general", 7, "B\u{200D}o\u{FEFF}b").await;
    assert_eq!(welcome["user"], "Bob (2)");
    // "A" and a combining ring is shown as the one character "Å".
    let (_angstrom, welcome) = join_as(&app, "general", 8, "A\u{30A}sa").await;
    assert_eq!(welcome["user"], "\u{C5}sa");
    // Nothing visible left: the account's fallback name.
    let (_blank, welcome) = join_as(&app, "general", 9, "\u{2066}\u{200B}").await;
    assert_eq!(welcome["user"], "user-9");
}

/// Two instances sharing Redis and a database, names leased for `name_lease`.
async fn two_instances(name_lease: Duration) -> (ChatApp, ChatApp) {
    let database_url = fresh_database(TestBackend::Sqlite)
        .await
        .expect("a database");
    let mut chat = test_chat_settings();
    chat.name_lease = name_lease;
    let mut instances = Vec::new();
    for _ in 0..2 {
        let mut settings = test_settings(database_url.clone());
        settings.cache.redis_url = Some(redis_url());
        instances.push(spawn_with(settings, chat.clone()).await);
    }
    let b = instances.pop().expect("two");
    (instances.pop().expect("two"), b)
}

/// Joins `room` as account `id` named `name` until its name is `wanted`.
async fn join_until_named(app: &ChatApp, room: &str, id: i64, name: &str, wanted: &str) -> Client {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (client, welcome) = join_as(app, room, id, name).await;
        if welcome["user"] == wanted {
            return client;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {welcome}, not {wanted}"
        );
        client.close().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_name_is_unique_in_a_room_across_instances_over_both_protocols() {
    testing::skip_unless!(Redis);
    let (a, b) = two_instances(Duration::from_secs(30)).await;
    let (alice, welcome) = join_as(&a, "general", 1, "Alice").await;
    assert_eq!(welcome["user"], "Alice");
    // Another account on the other instance is suffixed, as it is on one instance.
    let (_other, welcome) = join_as(&b, "general", 2, "alice").await;
    assert_eq!(welcome["user"], "alice (2)");
    let (mut sio, _) = Sio::open(&b).await;
    let (welcome, _) = sio
        .connect(&json!({"token": token_of(3, "ALICE"), "room": "general"}))
        .await;
    assert_eq!(welcome["user"], "ALICE (3)");
    // Alice's own tab on the other instance is Alice.
    let (alice_on_b, welcome) = join_as(&b, "general", 1, "Alice").await;
    assert_eq!(welcome["user"], "Alice");
    // Her tab on A gone, her tab on B still holds the name, for A's newcomers too.
    alice.close().await;
    let (_late, welcome) = join_as(&a, "general", 4, "Alice").await;
    assert_eq!(welcome["user"], "Alice (4)");
    // Once her last tab has left, the name is free everywhere.
    alice_on_b.close().await;
    join_until_named(&a, "general", 5, "Alice", "Alice").await;
}

#[tokio::test]
async fn the_name_of_an_instance_that_died_is_free_once_its_lease_lapses() {
    testing::skip_unless!(Redis);
    // Several seconds: the join below, refused "Dora", comes well within it on a loaded
    // machine; `join_until_named` then waits for the lapse (up to PATIENCE).
    let lease = Duration::from_secs(5);
    let (a, _b) = two_instances(lease).await;
    // An instance that takes "Dora" and dies: its runtime gone, its lease never released.
    let mut chat = a.chat.clone();
    chat.name_lease = lease;
    on_an_instance_that_ends(chat, "dead-instance", |names| async move {
        let claim = names
            .claim("general", Holder::Account(99), "Dora", || unreachable!())
            .await;
        assert_eq!(claim.name(), "Dora");
        std::mem::forget(claim);
    });
    let (_second, welcome) = join_as(&a, "general", 6, "Dora").await;
    assert_eq!(welcome["user"], "Dora (2)", "the lease still holds");
    join_until_named(&a, "general", 7, "Dora", "Dora").await;
}

/// A relay to Redis that, once `armed`, swallows every answer on the next connection that sends
/// a script call (`EVAL`/`EVALSHA`): the script runs in Redis, its caller waits (`armed` is
/// false again once that call is passed on to Redis). Once `cut`, it closes that connection,
/// so the pool finds it broken at once instead of waiting out its response timeout. Its URL.
async fn answer_holding_relay(armed: Arc<AtomicBool>, cut: Arc<AtomicBool>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let redis = redis_url();
    let rest = redis.trim_start_matches("redis://");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let target = authority.rsplit('@').next().expect("host:port").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let relay = format!("redis://{}{path}", listener.local_addr().expect("bound"));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                continue;
            };
            let armed = armed.clone();
            let cut = cut.clone();
            tokio::spawn(async move {
                let held = Arc::new(AtomicBool::new(false));
                let cut_if_held = held.clone();
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                let holding = held.clone();
                let up = async move {
                    let mut buffer = vec![0; 64 * 1024];
                    while let Ok(n @ 1..) = from_client.read(&mut buffer).await {
                        let chunk = &buffer[..n];
                        let hold = !holding.load(Ordering::SeqCst)
                            && chunk.windows(4).any(|word| word == b"EVAL")
                            && armed.load(Ordering::SeqCst);
                        if hold {
                            holding.store(true, Ordering::SeqCst);
                        }
                        if to_server.write_all(chunk).await.is_err() {
                            break;
                        }
                        if hold {
                            armed.store(false, Ordering::SeqCst);
                        }
                    }
                };
                let down = async move {
                    let mut buffer = vec![0; 64 * 1024];
                    while let Ok(n @ 1..) = from_server.read(&mut buffer).await {
                        if !held.load(Ordering::SeqCst)
                            && to_client.write_all(&buffer[..n]).await.is_err()
                        {
                            break;
                        }
                    }
                };
                let closed = async move {
                    while !(cut.load(Ordering::SeqCst) && cut_if_held.load(Ordering::SeqCst)) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                // Returning drops both sockets.
                tokio::select! {
                    _ = async { tokio::join!(up, down) } => {}
                    () = closed => {}
                }
            });
        }
    });
    relay
}

/// An instance's names (no HTTP) on the Redis at `redis`, as `chat` sets them up.
async fn registry(chat: &chat_service::Settings, instance: &'static str, redis: &str) -> RoomNames {
    let logger = runtime::test_logger(instance);
    let pubsub = PubSub::connect(Some(redis), logger.clone())
        .await
        .expect("Redis");
    RoomNames::new(
        pubsub.leases(),
        &chat.channel_prefix,
        chat.name_lease,
        logger,
    )
}

/// Two instances' names (no HTTP) on Redis, sharing `chat`'s channel prefix.
async fn two_registries(chat: &chat_service::Settings) -> (RoomNames, RoomNames) {
    (
        registry(chat, "a", &redis_url()).await,
        registry(chat, "b", &redis_url()).await,
    )
}

/// Runs `body` with the names of an instance whose process ends with it: a runtime of its own
/// on a thread of its own, both gone once `body` returns (no task of the instance runs after).
fn on_an_instance_that_ends<F, Body>(chat: chat_service::Settings, instance: &'static str, body: F)
where
    F: FnOnce(RoomNames) -> Body + Send + 'static,
    Body: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            body(registry(&chat, instance, &redis_url()).await).await;
        });
    })
    .join()
    .expect(instance);
}

#[tokio::test]
async fn a_claim_dropped_while_redis_takes_its_name_leaves_no_lease_behind() {
    testing::skip_unless!(Redis);
    let chat = test_chat_settings();
    // A reaches Redis through a relay that can keep an answer from it; B directly.
    let armed = Arc::new(AtomicBool::new(false));
    let cut = Arc::new(AtomicBool::new(false));
    let relayed = answer_holding_relay(armed.clone(), cut.clone()).await;
    let a = registry(&chat, "a", &relayed).await;
    let b = registry(&chat, "b", &redis_url()).await;
    // Redis runs A's script for "Eve" but A never hears back; the claim is dropped meanwhile
    // (as actix drops the handler of a client gone mid-handshake), once its script call has
    // reached the relay, however long the pool connection and SCRIPT LOAD before it took.
    armed.store(true, Ordering::SeqCst);
    let script_sent = async {
        while armed.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        claim = a.claim("general", Holder::Account(1), "Eve", || unreachable!()) => {
            panic!("{} answered through a relay that holds answers", claim.name());
        }
        () = script_sent => {}
    }
    cut.store(true, Ordering::SeqCst);
    // The release the drop queued, done (over another connection: the held one fails).
    a.flush().await;
    let eve = b
        .claim("general", Holder::Account(2), "Eve", || unreachable!())
        .await;
    assert_eq!(eve.name(), "Eve", "the dropped claim's lease is gone");
}

#[tokio::test]
async fn names_let_go_are_free_everywhere_once_flushed_even_as_the_instance_stops() {
    testing::skip_unless!(Redis);
    let chat = test_chat_settings();
    // An instance whose runtime ends right after its last name was let go and flushed (as the
    // binary exits once shutdown returns): nothing runs after the flush.
    let dying = chat.clone();
    on_an_instance_that_ends(dying, "stopping-instance", |names| async move {
        let claim = names
            .claim("general", Holder::Account(1), "Fay", || unreachable!())
            .await;
        assert_eq!(claim.name(), "Fay");
        drop(claim);
        names.flush().await;
    });
    let (other, _) = two_registries(&chat).await;
    let fay = other
        .claim("general", Holder::Account(2), "Fay", || unreachable!())
        .await;
    assert_eq!(fay.name(), "Fay", "released before the instance stopped");
}
