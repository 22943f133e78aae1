//! CORS in a real browser: headless Chromium (Debian's `chromium`), driven over the DevTools
//! protocol, loads a page from another origin (a second port) and calls the gateway with
//! `fetch`: a `PUT` and a `DELETE` with `Authorization` (so the browser sends a preflight
//! first), credentials included, reading the exposed `X-Request-Id`. From the listed origin
//! both pass; from an unlisted one the browser blocks them (`fetch` rejects) and nothing
//! reaches the upstream.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use gateway::cors::CorsConfig;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

use crate::{
    helpers::{config, route, spawn},
    scripted::ScriptedUpstream,
};

/// How long the browser may take for a step (it starts slowly on a busy machine).
const PATIENCE: Duration = Duration::from_secs(30);

/// A headless Chromium and a DevTools connection to it (the least of the chat-service test's
/// harness this test needs).
struct Browser {
    child: Child,
    devtools: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
    profile: std::path::PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    async fn launch() -> Self {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
        let profile = std::env::temp_dir().join(format!(
            "platform-gateway-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let mut child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "starting {binary} (Debian package `chromium`, installed by .ci/run): {error}"
                )
            });
        let stderr = child.stderr.take().expect("stderr");
        let (found, url) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = found.send(url.trim().to_owned());
                }
            }
        });
        let url = tokio::task::spawn_blocking(move || url.recv_timeout(PATIENCE))
            .await
            .expect("join")
            .expect("Chromium prints its DevTools address");
        let (devtools, _) = connect_async(url.as_str()).await.expect("DevTools");
        Self {
            child,
            devtools,
            next_id: 0,
            profile,
        }
    }

    /// Calls a DevTools method (in a page's session, or on the browser) and returns its result.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut request = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            request["sessionId"] = json!(session);
        }
        self.devtools
            .send(Message::text(request.to_string()))
            .await
            .expect("send to DevTools");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.devtools.next())
                .await
                .expect("DevTools answers in time")
                .expect("DevTools is connected")
                .expect("a DevTools frame");
            let Message::Text(text) = frame else { continue };
            let answer: Value = serde_json::from_str(text.as_str()).expect("JSON");
            if answer["id"] == id {
                assert!(answer["error"].is_null(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Opens a page; returns its session.
    async fn open(&mut self, url: &str) -> String {
        let target = self
            .call(None, "Target.createTarget", json!({"url": url}))
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_owned()
    }

    /// Evaluates JavaScript in a page, waiting for the promise it gives, and returns its value.
    async fn evaluate(&mut self, session: &str, expression: &str) -> Value {
        let result = self
            .call(
                Some(session),
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(result["exceptionDetails"].is_null(), "{result}");
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is `true`.
    async fn wait_for(&mut self, session: &str, what: &str, expression: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.evaluate(session, expression).await != json!(true) {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Serves one small HTML page on a port of its own (another origin than the gateway's);
/// returns its origin, `http://127.0.0.1:<port>`.
async fn page_origin() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    if stream.read_buf(&mut head).await.unwrap_or(0) == 0 {
                        return;
                    }
                }
                let page = "<!doctype html><title>another origin</title><p>calls the gateway</p>";
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    origin
}

/// The page's calls: a `PUT` and a `DELETE` to the gateway with a bearer token and credentials,
/// each giving `{status, id}` (the exposed `X-Request-Id`), or `{error}` when `fetch` rejects.
fn calls(gateway: &str, token: &str) -> String {
    format!(
        r#"(async () => {{
            const call = (method, id) => fetch({gateway} + '/api/items/1', {{
                method,
                credentials: 'include',
                headers: {{'Authorization': 'Bearer ' + {token}, 'Content-Type': 'application/json', 'X-Request-Id': id}},
                body: method === 'PUT' ? '{{"name":"x"}}' : undefined,
            }}).then(
                response => ({{status: response.status, id: response.headers.get('X-Request-Id')}}),
                error => ({{error: String(error)}}),
            );
            return [await call('PUT', 'browser-put'), await call('DELETE', 'browser-delete')];
        }})()"#,
        gateway = json!(gateway),
        token = json!(token),
    )
}

#[tokio::test]
async fn a_page_of_a_listed_origin_calls_the_api_and_an_unlisted_one_is_blocked() {
    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    let upstream = ScriptedUpstream::always(OK).await;
    let listed = page_origin().await;
    let unlisted = page_origin().await;
    let mut config = config(vec![route("/api/items", &[&upstream.url])]);
    config.cors = CorsConfig {
        allowed_origins: vec![listed.clone()],
        allow_credentials: true,
        ..CorsConfig::default()
    };
    let gateway = spawn(config);
    let gateway_origin = format!("http://{}", gateway.authority);
    let token = testing::user_token(7);

    let mut browser = Browser::launch().await;
    let page = browser.open(&format!("{listed}/")).await;
    browser
        .wait_for(
            &page,
            "the listed origin's page",
            &format!(
                "document.readyState === 'complete' && location.origin === {}",
                json!(listed)
            ),
        )
        .await;
    assert_eq!(
        browser
            .evaluate(&page, &calls(&gateway_origin, &token))
            .await,
        json!([
            {"status": 200, "id": "browser-put"},
            {"status": 200, "id": "browser-delete"},
        ]),
        "the listed origin's calls pass, and the page reads the exposed X-Request-Id"
    );
    let methods: Vec<String> = upstream
        .requests()
        .iter()
        .map(|line| line.split(' ').next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        methods,
        ["PUT", "DELETE"],
        "the preflights were answered by the gateway, the calls forwarded"
    );

    let page = browser.open(&format!("{unlisted}/")).await;
    browser
        .wait_for(
            &page,
            "the unlisted origin's page",
            &format!(
                "document.readyState === 'complete' && location.origin === {}",
                json!(unlisted)
            ),
        )
        .await;
    let blocked = browser
        .evaluate(&page, &calls(&gateway_origin, &token))
        .await;
    for call in blocked.as_array().expect("two calls") {
        assert!(
            call["error"]
                .as_str()
                .is_some_and(|error| error.contains("Failed to fetch")),
            "the browser blocks an unlisted origin's call: {blocked}"
        );
    }
    assert_eq!(
        upstream.requests().len(),
        2,
        "nothing of the unlisted origin's reached the upstream"
    );
}
