//! Names that cannot pass for others: shown in NFC without invisible or direction-changing
//! characters, and unique in a room (caseless): a second account with a taken name gets a
//! suffix, while one account's connections share its name.

use serde_json::Value;
use testing::TestBackend;

use crate::helpers::{ChatApp, Client, spawn_app, token_of};

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
