//! One client cannot take the chat for itself: its address holds a capped number of
//! connections (429 past it), and its messages spend its connection's, its account's and its
//! address's budgets (past one: dropped with `rate_limited`, the connection kept). The tests'
//! clients come from loopback, a trusted proxy by default, so the `X-Forwarded-For` they send
//! names the client address, as the gateway's does.

use std::time::Instant;

use chat_service::limits::{LimitSettings, Rate};
use serde_json::Value;
use testing::TestBackend;

use crate::helpers::{ChatApp, Client, eventually, spawn_tuned, test_chat_settings, token_of};

/// A guest of `room` whose client address is `address`, past its `welcome` and `history`.
async fn guest_from(app: &ChatApp, room: &str, address: &str) -> Client {
    let mut client = Client::connect_with(&app.ws_url(room, "x"), &[("x-forwarded-for", address)])
        .await
        .unwrap_or_else(|refused| panic!("a guest from {address} refused: {refused:?}"));
    client.expect("welcome").await;
    client.expect("history").await;
    client
}

/// Account `id` in `room` from `address`, past its `welcome` and `history`.
async fn account_from(app: &ChatApp, room: &str, id: i64, address: &str) -> Client {
    let authorization = format!("Bearer {}", token_of(id, &format!("user {id}")));
    let mut client = Client::connect_with(
        &app.ws_url(room, "x"),
        &[
            ("x-forwarded-for", address),
            ("authorization", authorization.as_str()),
        ],
    )
    .await
    .unwrap_or_else(|refused| panic!("account {id} from {address} refused: {refused:?}"));
    client.expect("welcome").await;
    client.expect("history").await;
    client
}

#[tokio::test]
async fn an_address_over_its_connections_is_refused_with_429_and_others_are_not() {
    let mut chat = test_chat_settings();
    chat.limits.connections_per_address = 3;
    let app = spawn_tuned(TestBackend::Sqlite, chat).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(guest_from(&app, "general", "198.51.100.7").await);
    }
    let refused = Client::connect_with(
        &app.ws_url("general", "x"),
        &[("x-forwarded-for", "198.51.100.7")],
    )
    .await
    .err()
    .expect("the fourth connection from one address is refused");
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.body["error"]["code"], "rate_limited", "{refused:?}");
    let message = refused.body["error"]["message"]
        .as_str()
        .expect("a message");
    assert!(
        message.contains("198.51.100.7") && message.contains("CHAT_CONNECTIONS_PER_ADDRESS"),
        "{message}"
    );
    assert!(refused.headers.contains_key("retry-after"), "{refused:?}");
    assert_eq!(app.metric("chat_connections_refused_total", &[]).await, 1.0);
    // An IPv6 client counts by its /64: other addresses of one block share its cap.
    for n in 1..=3 {
        held.push(guest_from(&app, "general", &format!("2001:db8:7:7::{n}")).await);
    }
    let refused = Client::connect_with(
        &app.ws_url("general", "x"),
        &[("x-forwarded-for", "2001:db8:7:7:ffff::1")],
    )
    .await
    .err()
    .expect("a fourth address of one /64 is refused");
    assert_eq!(refused.status, 429, "{refused:?}");

    // Another address chats on.
    let mut neighbour = guest_from(&app, "general", "198.51.100.8").await;
    neighbour.say("still open").await;
    assert_eq!(neighbour.expect("chatMessage").await["text"], "still open");

    // A connection that ends gives its slot back.
    held.remove(0).close().await;
    eventually("the closed connection's slot comes back", || async {
        let answer = Client::connect_with(
            &app.ws_url("general", "x"),
            &[("x-forwarded-for", "198.51.100.7")],
        )
        .await;
        if let Err(refused) = &answer {
            assert_eq!(refused.status, 429, "{refused:?}");
        }
        answer.is_ok()
    })
    .await;
    drop(held);
}

/// What `senders` got back for the `per_sender` messages each sent at once: the messages
/// delivered (their own copies) and those dropped with `rate_limited`, with the refusals'
/// messages, and how long the flood took.
async fn flood(senders: &mut [Client], per_sender: usize) -> (usize, Vec<String>, f64) {
    let started = Instant::now();
    for (n, sender) in senders.iter_mut().enumerate() {
        for m in 0..per_sender {
            sender.say(&format!("flood {n} {m}")).await;
        }
    }
    let (mut delivered, mut refusals) = (0, Vec::new());
    for (n, sender) in senders.iter_mut().enumerate() {
        let own = format!("flood {n} ");
        let mut outcomes = 0;
        while outcomes < per_sender {
            let event: Value = sender.next_event().await;
            match event["type"].as_str() {
                Some("chatMessage")
                    if event["text"].as_str().is_some_and(|t| t.starts_with(&own)) =>
                {
                    delivered += 1;
                    outcomes += 1;
                }
                Some("chatMessage" | "userJoined" | "userLeft") => {}
                Some("error") => {
                    assert_eq!(event["code"], "rate_limited", "{event}");
                    refusals.push(event["message"].as_str().unwrap_or("").to_owned());
                    outcomes += 1;
                }
                _ => panic!("unexpected {event}"),
            }
        }
    }
    (delivered, refusals, started.elapsed().as_secs_f64())
}

/// Most messages `rate` lets through in `seconds`: the burst and what refills meanwhile.
fn most(rate: Rate, seconds: f64) -> usize {
    rate.burst as usize + (seconds * f64::from(rate.per_second)).ceil() as usize
}

#[tokio::test]
async fn ten_connections_of_one_address_share_its_budget_and_a_neighbour_keeps_chatting() {
    let app = spawn_tuned(TestBackend::Sqlite, test_chat_settings()).await;
    let limits = LimitSettings::default();
    let mut senders = Vec::new();
    for _ in 0..10 {
        senders.push(guest_from(&app, "flooded", "203.0.113.5").await);
    }
    let mut neighbour = guest_from(&app, "flooded", "203.0.113.6").await;

    let (delivered, refusals, seconds) = flood(&mut senders, 20).await;
    assert!(
        delivered >= limits.address.burst as usize && delivered <= most(limits.address, seconds),
        "{delivered} of 200 delivered in {seconds:.2} s, budget {}",
        limits.address
    );
    assert_eq!(delivered + refusals.len(), 200);
    assert!(
        refusals.iter().all(|m| m.contains("203.0.113.5")),
        "each refusal names the address: {refusals:?}"
    );
    assert_eq!(
        app.metric("chat_rate_limited_total", &[("scope", "address")])
            .await,
        refusals.len() as f64
    );

    // The neighbour at another address saw exactly the delivered ones and chats on.
    neighbour.say("my turn").await;
    let mut seen = 0;
    loop {
        let event = neighbour.next_event().await;
        if event["type"] != "chatMessage" {
            continue;
        }
        if event["text"] == "my turn" {
            break;
        }
        seen += 1;
    }
    assert_eq!(seen, delivered);
}

#[tokio::test]
async fn one_account_on_several_connections_and_addresses_shares_its_budget() {
    let app = spawn_tuned(TestBackend::Sqlite, test_chat_settings()).await;
    let limits = LimitSettings::default();
    let mut senders = Vec::new();
    for n in 0..3 {
        senders.push(account_from(&app, "tabs", 77, &format!("192.0.2.{}", n + 1)).await);
    }
    let (delivered, refusals, seconds) = flood(&mut senders, 20).await;
    assert!(
        delivered >= limits.account.burst as usize && delivered <= most(limits.account, seconds),
        "{delivered} of 60 delivered in {seconds:.2} s, budget {}",
        limits.account
    );
    assert_eq!(delivered + refusals.len(), 60);
    assert!(
        refusals.iter().all(|m| m.contains("account")),
        "{refusals:?}"
    );
    // Another account is not held back by it.
    let mut other = account_from(&app, "tabs", 78, "192.0.2.1").await;
    other.say("another account").await;
    loop {
        let event = other.next_event().await;
        if event["type"] == "chatMessage" && event["text"] == "another account" {
            break;
        }
        assert_ne!(event["type"], "error", "{event}");
    }
}
