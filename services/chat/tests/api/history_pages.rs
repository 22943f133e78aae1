//! `GET /chat/rooms/{room}/messages`: a room's history walked page by page by cursor, who may
//! read it, what it refuses, and PostgreSQL plans that seek the `(room, seq)` index.

use chat_service::{
    history::{CAP_DELETE, History, page_query},
    protocol::ChatMessage,
};
use db::Database;
use serde_json::Value;
use server::{ListPage, Seek, encode_cursor};
use testing::{
    TestBackend, assert_index_plan, assert_index_plan_uses, error_code, fresh_database, link,
    on_both_backends,
};

use crate::helpers::{ChatApp, spawn_app, spawn_tuned, test_chat_settings, token_named};

/// Messages stored in the walked room.
const IN_ROOM: usize = 57;

/// A message of `room` whose text is `text`.
fn message(room: &str, text: &str) -> ChatMessage {
    ChatMessage {
        id: uuid::Uuid::new_v4().to_string(),
        room: room.to_owned(),
        user: "writer".to_owned(),
        user_id: Some(7),
        text: text.to_owned(),
        timestamp: db::timestamp_now(),
    }
}

/// The app's database, through its own [`History`] (the chat's store and cap-delete).
async fn history_of(app: &ChatApp) -> History {
    let database = Database::connect(
        &app.service.settings.database_url,
        chat_service::migrations(),
    )
    .await
    .expect("the test database");
    History::new(database, app.chat.history_cap)
}

/// Stores `lobby 0 … lobby 56` in `lobby`, a message of `other` after every third; the texts of
/// `lobby`, oldest first.
async fn fill(app: &ChatApp) -> Vec<String> {
    let history = history_of(app).await;
    let mut texts = Vec::new();
    for n in 0..IN_ROOM {
        let text = format!("lobby {n}");
        history
            .store(&message("lobby", &text))
            .await
            .expect("stored");
        texts.push(text);
        if n % 3 == 0 {
            let other = message("other", &format!("other {n}"));
            history.store(&other).await.expect("stored");
        }
    }
    texts
}

/// The texts of a page, after checking it is `lobby`'s.
async fn texts(response: reqwest::Response) -> Vec<String> {
    let page: Vec<Value> = response.json().await.expect("an array of messages");
    page.iter()
        .map(|message| {
            assert_eq!(message["room"], "lobby", "{message}");
            message["text"].as_str().expect("a text").to_owned()
        })
        .collect()
}

async fn the_history_is_walked_back_and_forth_by_cursor(backend: TestBackend) {
    let app = spawn_app(backend).await;
    let stored = fill(&app).await;

    // The newest page by default, 50 messages, oldest first.
    let response = app.get("/chat/rooms/lobby/messages").await;
    assert_eq!(response.status(), 200);
    assert_eq!(link(&response, "next"), None, "nothing is newer");
    assert!(link(&response, "prev").is_some(), "older messages");
    assert_eq!(
        link(&response, "first").as_deref(),
        Some("/chat/rooms/lobby/messages?limit=50")
    );
    assert_eq!(texts(response).await, stored[IN_ROOM - 50..]);

    // Backwards from the newest page by rel="prev".
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut prev = Some("/chat/rooms/lobby/messages?limit=10".to_owned());
    let mut oldest = String::new();
    while let Some(url) = prev {
        let response = app.get(&url).await;
        assert_eq!(response.status(), 200, "{url}");
        if pages.is_empty() {
            assert_eq!(link(&response, "next"), None, "the newest page has no next");
        }
        prev = link(&response, "prev");
        oldest = url;
        let page = texts(response).await;
        assert!(!page.is_empty() && page.len() <= 10, "{page:?}");
        pages.insert(0, page);
    }
    assert_eq!(pages.len(), 6);
    assert_eq!(
        pages.concat(),
        stored,
        "backwards: every message once, in order"
    );

    // Forwards from the oldest page by rel="next".
    let mut seen = Vec::new();
    let mut next = Some(oldest);
    let mut forwards = 0;
    while let Some(url) = next {
        let response = app.get(&url).await;
        assert_eq!(response.status(), 200, "{url}");
        if forwards == 0 {
            assert_eq!(link(&response, "prev"), None, "the oldest page has no prev");
        }
        next = link(&response, "next");
        seen.extend(texts(response).await);
        forwards += 1;
    }
    assert_eq!(seen, stored, "forwards: every message once, in order");

    // The other room holds its own messages only.
    let response = app.get("/chat/rooms/other/messages?limit=1000").await;
    let page: Vec<Value> = response.json().await.expect("an array");
    assert_eq!(page.len(), IN_ROOM.div_ceil(3));
    assert!(page.iter().all(|message| message["room"] == "other"));

    // Joining still sends the newest 50, as the first page does.
    let (client, history) = app.join("lobby", "alice").await;
    let joined: Vec<&str> = history.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(joined, stored[IN_ROOM - 50..]);
    client.close().await;
}

on_both_backends!(the_history_is_walked_back_and_forth_by_cursor);

#[tokio::test]
async fn bad_rooms_cursors_and_limits_are_400() {
    let app = spawn_app(TestBackend::Sqlite).await;
    fill(&app).await;
    let cursor = encode_cursor("chat", 10);
    let long_room = "r".repeat(65);
    let huge_cursor = "A".repeat(10_000);
    let other_list = encode_cursor("users", 10);
    for path in [
        "/chat/rooms/bad%20room!/messages".to_owned(),
        "/chat/rooms/%3Cscript%3E/messages".to_owned(),
        format!("/chat/rooms/{long_room}/messages"),
        "/chat/rooms/lobby/messages?before=not-a-cursor".to_owned(),
        "/chat/rooms/lobby/messages?after=%00%FF".to_owned(),
        format!("/chat/rooms/lobby/messages?after={other_list}"),
        format!("/chat/rooms/lobby/messages?before={huge_cursor}"),
        format!("/chat/rooms/lobby/messages?before={cursor}&after={cursor}"),
        "/chat/rooms/lobby/messages?limit=1001".to_owned(),
        "/chat/rooms/lobby/messages?limit=99999999999999999999".to_owned(),
        "/chat/rooms/lobby/messages?limit=-1".to_owned(),
        "/chat/rooms/lobby/messages?limit=ten".to_owned(),
        "/chat/rooms/lobby/messages?offset=10".to_owned(),
        "/chat/rooms/lobby/messages?ids=1,2".to_owned(),
        "/chat/rooms/lobby/messages?count=exact".to_owned(),
    ] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), 400, "{path}");
        assert_eq!(error_code(response).await, "bad_request", "{path}");
    }
    // The largest page and an empty one are pages.
    let response = app.get("/chat/rooms/lobby/messages?limit=1000").await;
    assert_eq!(response.status(), 200);
    assert_eq!(texts(response).await.len(), IN_ROOM);
    let response = app.get("/chat/rooms/lobby/messages?limit=0").await;
    assert_eq!(response.status(), 200);
    assert!(texts(response).await.is_empty());
    // An unknown room is an empty history.
    let response = app.get("/chat/rooms/nobody-here/messages").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("a body"), "[]");
}

#[tokio::test]
async fn readers_are_those_who_may_join() {
    let mut chat = test_chat_settings();
    chat.guests = false;
    let app = spawn_tuned(TestBackend::Sqlite, chat).await;
    fill(&app).await;
    let path = "/chat/rooms/lobby/messages?limit=3";

    let response = app.get(path).await;
    assert_eq!(response.status(), 401, "no guests: a token is needed");
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert_eq!(error_code(response).await, "unauthorized");

    let bearer = |token: &str| {
        app.service
            .client
            .get(app.service.url(path))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    let response = bearer("not.a.token").await.expect("GET");
    assert_eq!(response.status(), 401, "a bad token");
    assert_eq!(error_code(response).await, "unauthorized");
    let response = bearer(&token_named("alice")).await.expect("GET");
    assert_eq!(response.status(), 200, "a member");
    assert_eq!(texts(response).await.len(), 3);

    // With guests, no token reads; a bad token is still refused.
    let guests = spawn_app(TestBackend::Sqlite).await;
    fill(&guests).await;
    assert_eq!(guests.get(path).await.status(), 200);
    let response = guests
        .service
        .client
        .get(guests.service.url(path))
        .header("authorization", "Bearer not.a.token")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 401);
}

/// `sql` with its placeholders replaced by `values` (`$1` the first), for EXPLAIN.
fn with_literals(sql: &str, values: &[String]) -> String {
    values
        .iter()
        .enumerate()
        .rev()
        .fold(sql.to_owned(), |sql, (index, value)| {
            sql.replace(&format!("${}", index + 1), value)
        })
}

/// The SQL of one page of `lobby` with its values written in.
fn page_sql(seek: Seek) -> String {
    let (sql, binds) = page_query(&ListPage { limit: 50, seek });
    let mut values = vec!["'lobby'".to_owned()];
    values.extend(binds.iter().map(i64::to_string));
    with_literals(&sql, &values)
}

#[tokio::test]
async fn pages_and_the_cap_delete_seek_the_room_index_on_postgres() {
    testing::skip_unless!(Postgres);
    let url = fresh_database(TestBackend::Postgres)
        .await
        .expect("a database");
    let database = Database::connect(&url, chat_service::migrations())
        .await
        .expect("migrated");
    // Rooms as they are: many, each a small share of the table (200 rooms of 20 messages).
    sqlx::query(
        "INSERT INTO chat_messages (id, room, user_name, user_id, text, created_at) \
         SELECT 'm' || n, CASE WHEN n % 200 = 0 THEN 'lobby' ELSE 'room-' || (n % 200) END, \
                'someone', NULL, 'hello', '2026-12-04T00:00:00.000Z' \
         FROM generate_series(1, 4000) AS n",
    )
    .execute(database.pool())
    .await
    .expect("filled");
    sqlx::query("ANALYZE chat_messages")
        .execute(database.pool())
        .await
        .expect("ANALYZE");
    let cap_delete = with_literals(
        CAP_DELETE,
        &["'lobby'".to_owned(), "'lobby'".to_owned(), "99".to_owned()],
    );
    let (_, subquery) = cap_delete
        .split_once("seq < ")
        .expect("the cap's sub-query");
    for (what, sql) in [
        ("the newest page", page_sql(Seek::End)),
        ("a page before a cursor", page_sql(Seek::Before(2000))),
        ("a page after a cursor", page_sql(Seek::After(2000))),
    ] {
        assert_index_plan_uses(&database, what, &sql, "chat_messages_room_seq").await;
    }
    for (what, sql) in [
        ("the cap-delete", cap_delete.clone()),
        (
            "the cap-delete's sub-query",
            subquery.trim_matches(['(', ')']).to_owned(),
        ),
    ] {
        assert_index_plan(&database, what, &sql).await;
    }
}
