//! The native rules over Socket.IO, where `/chat/ws`'s tests cannot reach: every packet spends
//! the budgets (a flood of `CONNECT`s to an unknown namespace too).

use chat_service::limits::Rate;
use serde_json::{Value, json};
use testing::TestBackend;

use crate::{
    helpers::{message_budgets_out_of_reach, spawn_tuned, test_chat_settings},
    socketio::Sio,
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
    // The main namespace's CONNECT spends the same budget: refused too, in its CONNECT_ERROR.
    sio.send("40{}").await;
    let refused = sio.recv().await;
    let payload: Value =
        serde_json::from_str(refused.strip_prefix("44").expect("CONNECT_ERROR")).expect("JSON");
    assert_eq!(payload["data"]["code"], "rate_limited", "{refused}");
}
