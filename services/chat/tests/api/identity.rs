//! Who may connect and under which name: tokens in the three places a client may put one,
//! server-assigned guest names, `CHAT_GUESTS`, and the handshake's `Origin` check.

use chat_service::{Application, NAME, access::AllowedOrigins};
use serde_json::Value;
use testing::{TestBackend, TestService, capturing_logger, fresh_database};

use crate::helpers::{
    ChatApp, Client, Refused, spawn_app, spawn_tuned, test_chat_settings, test_settings, token_of,
};

/// The three places a token may travel in.
#[derive(Debug, Clone, Copy)]
enum Place {
    Header,
    Subprotocol,
    Query,
}

const PLACES: [Place; 3] = [Place::Header, Place::Subprotocol, Place::Query];

impl ChatApp {
    /// `ws://…/chat/ws?room=<room>&name=<name>` plus `extra` query.
    fn ws_url_with(&self, room: &str, name: &str, extra: &str) -> String {
        format!("{}{extra}", self.ws_url(room, name))
    }

    /// Opens a WebSocket presenting `token` in `place` (asking for the name `name`, which
    /// must make no difference).
    async fn connect_presenting(
        &self,
        room: &str,
        name: &str,
        token: &str,
        place: Place,
    ) -> Result<(Client, tokio_tungstenite::tungstenite::http::HeaderMap), Refused> {
        match place {
            Place::Header => {
                let authorization = format!("Bearer {token}");
                Client::connect_response(
                    &self.ws_url(room, name),
                    &[("authorization", authorization.as_str())],
                )
                .await
            }
            Place::Subprotocol => {
                let offer = format!("bearer, {token}");
                Client::connect_response(
                    &self.ws_url(room, name),
                    &[("sec-websocket-protocol", offer.as_str())],
                )
                .await
            }
            Place::Query => {
                let url = self.ws_url_with(room, name, &format!("&access_token={token}"));
                Client::connect_response(&url, &[]).await
            }
        }
    }
}

fn is_guest_name(name: &Value) -> bool {
    name.as_str().is_some_and(|name| {
        name.len() == 10
            && name.starts_with("guest-")
            && name[6..].chars().all(|c| c.is_ascii_hexdigit())
    })
}

fn assert_refused(refused: &Refused, status: u16, code: &str) {
    assert_eq!(refused.status, status, "{refused:?}");
    assert_eq!(refused.body["error"]["code"], code, "{refused:?}");
    assert!(refused.body["error"]["message"].is_string(), "{refused:?}");
}

#[tokio::test]
async fn a_guest_gets_a_server_assigned_name_whatever_name_it_asks_for() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let mut names = Vec::new();
    for asked in ["alice", "guest-zzzz", "user-1", "%20"] {
        let mut guest = Client::connect(&app.ws_url("lobby", asked)).await;
        let welcome = guest.expect("welcome").await;
        assert!(is_guest_name(&welcome["user"]), "asked {asked}: {welcome}");
        assert!(welcome.get("user_id").is_none(), "{welcome}");
        guest.expect("history").await;
        names.push((welcome["user"].clone(), guest));
    }
    // A guest's message carries its assigned name and no account id.
    let (name, guest) = names.last_mut().expect("a guest");
    guest.say("hello").await;
    let message = guest.expect("chatMessage").await;
    assert_eq!(&message["user"], name, "{message}");
    assert!(message.get("user_id").is_none(), "{message}");
}

#[tokio::test]
async fn a_token_in_each_place_chats_under_the_account_name_which_no_guest_gets() {
    let app = spawn_app(TestBackend::Sqlite).await;
    for (n, place) in PLACES.into_iter().enumerate() {
        let room = format!("signed-{n}");
        let id = 40 + i64::try_from(n).expect("small");
        let token = token_of(id, "Dana");
        let (mut dana, headers) = app
            .connect_presenting(&room, "someone-else", &token, place)
            .await
            .unwrap_or_else(|refused| panic!("{place:?}: {refused:?}"));
        let protocol = headers
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok());
        match place {
            // The subprotocol `bearer` is selected; the token is never echoed.
            Place::Subprotocol => assert_eq!(protocol, Some("bearer"), "{place:?}"),
            _ => assert_eq!(protocol, None, "{place:?}"),
        }
        let welcome = dana.expect("welcome").await;
        assert_eq!(welcome["user"], "Dana", "{place:?}: {welcome}");
        assert_eq!(welcome["user_id"], id, "{place:?}: {welcome}");
        dana.expect("history").await;

        // A guest asking for Dana's name gets a guest name.
        let mut guest = Client::connect(&app.ws_url(&room, "Dana")).await;
        let guest_welcome = guest.expect("welcome").await;
        assert!(is_guest_name(&guest_welcome["user"]), "{guest_welcome}");
        guest.expect("history").await;
        let joined = dana.expect("userJoined").await;
        assert_eq!(joined["user"], guest_welcome["user"]);
        assert!(joined.get("user_id").is_none(), "{joined}");

        dana.say("signed").await;
        for client in [&mut dana, &mut guest] {
            let message = client.expect("chatMessage").await;
            assert_eq!(message["user"], "Dana", "{place:?}: {message}");
            assert_eq!(message["user_id"], id, "{place:?}: {message}");
        }
        // The history keeps the account id.
        let mut late = Client::connect(&app.ws_url(&room, "late")).await;
        late.expect("welcome").await;
        let history = late.expect("history").await;
        assert_eq!(history["messages"][0]["user"], "Dana");
        assert_eq!(history["messages"][0]["user_id"], id);
    }
}

#[tokio::test]
async fn a_token_without_a_name_chats_as_user_and_its_id() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let issuer = testing::test_issuer();
    let mut claims = issuer.claims(77, "ignored", &[auth::Role::User]);
    claims.name = None;
    let token = issuer.keys().sign(&claims).expect("a token");
    let (mut client, _) = app
        .connect_presenting("general", "x", &token, Place::Header)
        .await
        .expect("accepted");
    let welcome = client.expect("welcome").await;
    assert_eq!(welcome["user"], "user-77");
    assert_eq!(welcome["user_id"], 77);
}

#[tokio::test]
async fn an_invalid_token_in_any_place_is_refused_with_401_before_the_upgrade() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let issuer = testing::test_issuer();
    let mut expired = issuer.claims(5, "old", &[auth::Role::User]);
    expired.exp = expired.iat - 3600;
    expired.iat -= 7200;
    let expired = issuer.keys().sign(&expired).expect("a token");
    let foreign = auth::TokenIssuer::new(
        std::sync::Arc::new(auth::SigningKeys::generate().expect("keys")),
        auth::DEFAULT_ISSUER,
        auth::DEFAULT_AUDIENCE,
        std::time::Duration::from_secs(900),
    )
    .issue(5, "mallory", &[auth::Role::Admin])
    .expect("a token")
    .token;
    let long = "a".repeat(4000);
    for place in PLACES {
        for token in ["garbage", "x.y.z", expired.as_str(), &foreign, &long] {
            let refused = app
                .connect_presenting("general", "mallory", token, place)
                .await
                .map(|_| ())
                .expect_err("refused");
            assert_refused(&refused, 401, "unauthorized");
            let challenge = refused
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert!(
                challenge.contains(r#"error="invalid_token""#),
                "{place:?}: {challenge}"
            );
        }
    }
    // Malformed presentations: another scheme, `Bearer` alone, `bearer` offered without a
    // token after it, an empty or spaced query token.
    let url = app.ws_url("general", "m");
    for headers in [
        [("authorization", "Basic YTpi")],
        [("authorization", "Bearer")],
        [("sec-websocket-protocol", "bearer")],
        [("sec-websocket-protocol", "chat, bearer")],
    ] {
        let refused = Client::connect_with(&url, &headers)
            .await
            .map(|_| ())
            .expect_err("refused");
        assert_refused(&refused, 401, "unauthorized");
    }
    for query in ["&access_token=", "&access_token=a%20b", "&access_token=%00"] {
        let refused = Client::connect_with(&app.ws_url_with("general", "m", query), &[])
            .await
            .map(|_| ())
            .expect_err("refused");
        assert_refused(&refused, 401, "unauthorized");
    }
    // Not one of them was upgraded.
    assert_eq!(app.metric("chat_connections_total", &[]).await, 0.0);
}

#[tokio::test]
async fn the_first_place_with_a_token_is_the_one_read() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let header = format!("Bearer {}", token_of(1, "from-header"));
    let offer = format!("bearer, {}", token_of(2, "from-subprotocol"));
    let url = app.ws_url_with("general", "x", "&access_token=garbage");
    let mut client = Client::connect_with(
        &url,
        &[
            ("authorization", header.as_str()),
            ("sec-websocket-protocol", offer.as_str()),
        ],
    )
    .await
    .expect("the header's token is read");
    assert_eq!(client.expect("welcome").await["user"], "from-header");
    let mut client = Client::connect_with(&url, &[("sec-websocket-protocol", offer.as_str())])
        .await
        .expect("the subprotocol's token is read");
    assert_eq!(client.expect("welcome").await["user"], "from-subprotocol");
}

#[tokio::test]
async fn without_guests_a_connection_needs_a_token() {
    let mut chat = test_chat_settings();
    chat.guests = false;
    let app = spawn_tuned(TestBackend::Sqlite, chat).await;
    let refused = Client::connect_with(&app.ws_url("general", "alice"), &[])
        .await
        .map(|_| ())
        .expect_err("no guests");
    assert_refused(&refused, 401, "unauthorized");
    let challenge = refused
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        challenge.starts_with("Bearer") && !challenge.contains("invalid_token"),
        "{challenge}"
    );
    // A signed-in user is let in.
    let (mut alice, _) = app.join("general", "alice").await;
    alice.say("members only").await;
    assert_eq!(alice.expect("chatMessage").await["user"], "alice");
}

/// `http://127.0.0.1:<port>`: the test clients' own host, as a browser would send it.
fn own_origin(app: &ChatApp) -> String {
    app.service.address.clone()
}

#[tokio::test]
async fn a_handshake_from_another_origin_is_refused_with_403() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let url = app.ws_url("general", "x");
    let port = app.service.address.rsplit(':').next().expect("a port");
    let other_port = if port == "80" { "81" } else { "80" };
    for origin in [
        "http://evil.example".to_owned(),
        "null".to_owned(),
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{other_port}"),
        format!("http://127.0.0.1.evil.example:{port}"),
        "not an origin".to_owned(),
        "x".repeat(5000),
    ] {
        let refused = Client::connect_with(&url, &[("origin", origin.as_str())])
            .await
            .map(|_| ())
            .expect_err("refused");
        assert_refused(&refused, 403, "forbidden");
    }
    // Even with a valid token: the origin is checked first.
    let authorization = format!("Bearer {}", token_of(3, "carol"));
    let refused = Client::connect_with(
        &url,
        &[
            ("origin", "http://evil.example"),
            ("authorization", authorization.as_str()),
        ],
    )
    .await
    .map(|_| ())
    .expect_err("refused");
    assert_refused(&refused, 403, "forbidden");
    // Two Origin headers are not an origin.
    let own = own_origin(&app);
    let refused = Client::connect_with(&url, &[("origin", own.as_str()), ("origin", own.as_str())])
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_refused(&refused, 403, "forbidden");
    assert_eq!(app.metric("chat_connections_total", &[]).await, 0.0);
}

#[tokio::test]
async fn the_own_origin_and_no_origin_are_let_in() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let url = app.ws_url("general", "x");
    let own = own_origin(&app);
    let upper = own.to_uppercase();
    for headers in [
        vec![("origin", own.as_str())],
        vec![("origin", upper.as_str())],
        // No Origin: not a browser.
        vec![],
        // Behind a proxy that names the host the browser used.
        vec![
            ("origin", "https://chat.example"),
            ("x-forwarded-host", "chat.example"),
        ],
    ] {
        let mut client = Client::connect_with(&url, &headers)
            .await
            .unwrap_or_else(|refused| panic!("{headers:?}: {refused:?}"));
        client.expect("welcome").await;
    }
}

#[tokio::test]
async fn chat_allowed_origins_lets_those_origins_in_too() {
    let mut chat = test_chat_settings();
    chat.allowed_origins =
        AllowedOrigins::parse("https://app.example, http://localhost:5173").expect("origins");
    let app = spawn_tuned(TestBackend::Sqlite, chat).await;
    let url = app.ws_url("general", "x");
    let own = own_origin(&app);
    for origin in [
        "https://app.example",
        "https://APP.example:443",
        "http://localhost:5173",
        own.as_str(),
    ] {
        let mut client = Client::connect_with(&url, &[("origin", origin)])
            .await
            .unwrap_or_else(|refused| panic!("{origin}: {refused:?}"));
        client.expect("welcome").await;
    }
    for origin in [
        "http://app.example",
        "https://app.example:8443",
        "http://localhost:5174",
        "https://other.example",
    ] {
        let refused = Client::connect_with(&url, &[("origin", origin)])
            .await
            .map(|_| ())
            .expect_err(origin);
        assert_refused(&refused, 403, "forbidden");
    }
}

#[tokio::test]
async fn a_token_in_the_query_is_never_logged() {
    let database = fresh_database(TestBackend::Sqlite)
        .await
        .expect("a database");
    let (logger, lines) = capturing_logger(NAME);
    let chat = test_chat_settings();
    let service = TestService::start(test_settings(database), logger, move |settings, logger| {
        Application::build_with(settings, chat.clone(), logger)
    })
    .await;
    let app = ChatApp {
        service,
        chat: test_chat_settings(),
    };
    let token = token_of(9, "quiet");
    let (mut client, _) = app
        .connect_presenting("general", "x", &token, Place::Query)
        .await
        .expect("accepted");
    client.expect("welcome").await;
    client.close().await;
    let refused = app
        .connect_presenting("general", "x", "not-a-valid-token", Place::Query)
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(refused.status, 401);
    let logged = String::from_utf8(lines.lock().expect("log lines").clone()).expect("UTF-8");
    assert!(
        logged.contains("/chat/ws"),
        "the requests were logged: {logged}"
    );
    assert!(!logged.contains(&token), "{logged}");
    assert!(!logged.contains("not-a-valid-token"), "{logged}");
    assert!(!logged.contains("access_token"), "{logged}");
}
