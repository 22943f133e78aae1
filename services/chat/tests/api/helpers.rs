//! Spawning chat-service the way the binary does, and a WebSocket client for the tests.

use std::time::Duration;

use chat_service::{
    Application, DEFAULT_PORT, NAME, Settings,
    limits::{LimitSettings, Rate},
};
use futures_util::{SinkExt, StreamExt};
use runtime::{DatabaseUrl, test_logger};
use serde_json::{Value, json};
use server::ServiceSettings;
use testing::{TestBackend, TestService, fresh_database, service_settings};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    WebSocketStream, client_async,
    tungstenite::{
        self, Message,
        client::IntoClientRequest,
        http::{HeaderMap, HeaderValue},
        protocol::CloseFrame,
    },
};

/// How long a test waits for an event that must come.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A running chat-service and what it was started with.
pub struct ChatApp {
    /// The server and its HTTP client.
    pub service: TestService,
    /// Its chat settings (to start it again alike).
    pub chat: Settings,
}

impl std::ops::Deref for ChatApp {
    type Target = TestService;

    fn deref(&self) -> &TestService {
        &self.service
    }
}

impl ChatApp {
    /// `ws://127.0.0.1:<port>/chat/ws?room=…&name=…`.
    pub fn ws_url(&self, room: &str, name: &str) -> String {
        format!(
            "{}/chat/ws?room={room}&name={name}",
            self.service.address.replace("http://", "ws://")
        )
    }

    /// Connects a client signed in as an account named `name` (token in the `Authorization`
    /// header) and reads its `welcome` and `history`.
    pub async fn join(&self, room: &str, name: &str) -> (Client, Vec<Value>) {
        let authorization = format!("Bearer {}", token_named(name));
        let mut client = Client::connect_with(
            &self.ws_url(room, name),
            &[("authorization", authorization.as_str())],
        )
        .await
        .unwrap_or_else(|refused| panic!("{name} refused: {refused:?}"));
        let welcome = client.expect("welcome").await;
        assert_eq!(welcome["user"], name, "{welcome}");
        assert_eq!(welcome["room"], room, "{welcome}");
        let history = client.expect("history").await;
        let messages = history["messages"]
            .as_array()
            .expect("history.messages")
            .clone();
        (client, messages)
    }

    /// Stops the server (closing its clients).
    pub async fn stop(self) {
        self.service.server.stop().await;
    }

    /// The value of a series of `/metrics`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.service.metric(name, labels).await
    }

    /// `GET /chat/rooms`.
    pub async fn rooms(&self) -> Value {
        let response = self.service.get("/chat/rooms").await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("rooms JSON")
    }

    /// The online count of `room` in `GET /chat/rooms` (0 when not listed).
    pub async fn online(&self, room: &str) -> u64 {
        self.rooms()
            .await
            .as_array()
            .expect("an array")
            .iter()
            .find(|entry| entry["room"] == room)
            .and_then(|entry| entry["online"].as_u64())
            .unwrap_or(0)
    }
}

/// An access token (the tests' keys) of an account named `name`, whose id is derived from the
/// name (the same name, the same account).
pub fn token_named(name: &str) -> String {
    let id = name.bytes().fold(7_i64, |id, byte| {
        (id * 31 + i64::from(byte)) % 1_000_000_007
    }) + 1;
    token_of(id, name)
}

/// An access token (the tests' keys) of account `id` named `name`.
pub fn token_of(id: i64, name: &str) -> String {
    testing::test_issuer()
        .issue(id, name, &[auth::Role::User])
        .expect("a test token")
        .token
}

/// A handshake the server refused: its status, headers and JSON body.
#[derive(Debug)]
pub struct Refused {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, as JSON (`Null` if it was not).
    pub body: Value,
}

/// Chat settings for tests: the real limits, a unique channel prefix.
pub fn test_chat_settings() -> Settings {
    Settings {
        channel_prefix: format!("test:chat:{}", uuid::Uuid::new_v4().simple()),
        ..Settings::default()
    }
}

/// Limits whose message budgets no test reaches (its connection cap as by default).
pub fn message_budgets_out_of_reach() -> LimitSettings {
    let plenty = Rate::new(100_000, 100_000);
    LimitSettings {
        connection: plenty,
        account: plenty,
        address: plenty,
        ..LimitSettings::default()
    }
}

/// Service settings for a test instance on `database_url`.
pub fn test_settings(database_url: DatabaseUrl) -> ServiceSettings {
    service_settings(NAME, DEFAULT_PORT, database_url)
}

/// chat-service on a fresh database of `backend`, with the default chat settings.
pub async fn spawn_app(backend: TestBackend) -> ChatApp {
    spawn_tuned(backend, test_chat_settings()).await
}

/// chat-service on a fresh database of `backend` with these chat settings.
pub async fn spawn_tuned(backend: TestBackend, chat: Settings) -> ChatApp {
    let database_url = fresh_database(backend)
        .await
        .expect("a fresh test database");
    spawn_with(test_settings(database_url), chat).await
}

/// chat-service with these settings.
pub async fn spawn_with(settings: ServiceSettings, chat: Settings) -> ChatApp {
    let built = chat.clone();
    let service = TestService::start(settings, test_logger(NAME), move |settings, logger| {
        Application::build_with(settings, built, logger)
    })
    .await;
    ChatApp { service, chat }
}

/// A WebSocket client of the chat.
pub struct Client {
    /// The connection.
    pub socket: WebSocketStream<TcpStream>,
}

impl Client {
    /// Opens a WebSocket to `url` (a `ws://` URL).
    pub async fn connect(url: &str) -> Self {
        Self::connect_with_receive_buffer(url, None).await
    }

    /// Opens a WebSocket with these extra handshake headers; the refusal if the server
    /// answers with anything but 101.
    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Result<Self, Refused> {
        Self::connect_response(url, headers)
            .await
            .map(|(client, _)| client)
    }

    /// [`Self::connect_with`], with the server's 101 headers.
    pub async fn connect_response(
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<(Self, HeaderMap), Refused> {
        let mut request = url.into_client_request().expect("a WebSocket request");
        for (name, value) in headers {
            request.headers_mut().append(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("a name"),
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        let address = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("host:port");
        let stream = TcpStream::connect(address).await.expect("TCP connect");
        match client_async(request, stream).await {
            Ok((socket, response)) => {
                assert_eq!(response.status(), 101);
                Ok((Self { socket }, response.headers().clone()))
            }
            Err(tungstenite::Error::Http(response)) => Err(Refused {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                body: response
                    .body()
                    .as_deref()
                    .and_then(|body| serde_json::from_slice(body).ok())
                    .unwrap_or(Value::Null),
            }),
            Err(error) => panic!("the handshake failed: {error}"),
        }
    }

    /// Opens a WebSocket whose TCP receive buffer is `receive_buffer` bytes (a small one makes
    /// a client that does not read stall the server's writes quickly).
    pub async fn connect_with_receive_buffer(url: &str, receive_buffer: Option<u32>) -> Self {
        let address = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("host:port");
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        let stream = socket
            .connect(address.parse().expect("an address"))
            .await
            .expect("TCP connect");
        let (socket, response) = client_async(url, stream).await.expect("WebSocket upgrade");
        assert_eq!(response.status(), 101);
        Self { socket }
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.socket
            .send(Message::text(text.into()))
            .await
            .expect("send a frame");
    }

    /// Sends a JSON event.
    pub async fn send_json(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    /// Sends `{"type":"chatMessage","text":…}`.
    pub async fn say(&mut self, text: &str) {
        self.send_json(json!({"type": "chatMessage", "text": text}))
            .await;
    }

    /// The next frame that is not a ping or pong, within [`PATIENCE`].
    pub async fn next_frame(&mut self) -> Message {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("a frame in time")
                .expect("the connection is open")
                .expect("a valid frame");
            if !matches!(frame, Message::Ping(_) | Message::Pong(_)) {
                return frame;
            }
        }
    }

    /// The next event (a JSON text frame).
    pub async fn next_event(&mut self) -> Value {
        match self.next_frame().await {
            Message::Text(text) => serde_json::from_str(text.as_str()).expect("a JSON event"),
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// The next event, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let event = self.next_event().await;
        assert_eq!(event["type"], kind, "expected {kind}, got {event}");
        event
    }

    /// The next event, which must be an `error` with `code`.
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let event = self.expect("error").await;
        assert_eq!(event["code"], code, "{event}");
        assert!(event["message"].is_string(), "{event}");
        event
    }

    /// Reads (skipping events) until the server's close frame; returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("the close frame in time");
            match frame {
                Some(Ok(Message::Close(Some(CloseFrame { code, .. })))) => return code.into(),
                Some(Ok(Message::Close(None))) => return 1005,
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("the connection failed before a close frame: {error}"),
                None => panic!("the connection ended without a close frame"),
            }
        }
    }

    /// Closes the connection cleanly.
    pub async fn close(mut self) {
        self.socket.close(None).await.expect("close");
        // Read to the end so the close handshake completes.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(PATIENCE, self.socket.next()).await {}
    }
}

/// Polls `condition` until it holds, for up to [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    testing::eventually(what, PATIENCE, condition).await;
}
