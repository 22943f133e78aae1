//! The web page in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `.ci/run`), driven over the DevTools protocol. Two pages chat, a guest and a signed-in user
//! (its token handed to the page's `chatAuth.useToken`, as its sign-in form does with the
//! login's), system messages have the seed's colours, a `<script>` message is shown as text,
//! the page reconnects by itself after a restart. A screenshot is written to
//! `$CARGO_TARGET_TMPDIR/chat-browser.png`.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use testing::TestBackend;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

use crate::helpers::{spawn_app, spawn_with, token_of};

/// How long the browser may take for a step (it starts slowly on a busy machine).
const PATIENCE: Duration = Duration::from_secs(30);

/// A headless Chromium and a DevTools connection to it.
pub struct Browser {
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
    pub async fn launch() -> Self {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
        let profile = std::env::temp_dir().join(format!(
            "platform-chat-chromium-{}",
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
                "--window-size=800,600",
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
        let url = tokio::task::spawn_blocking(move || url.recv_timeout(Duration::from_secs(30)))
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
    pub async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
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
    pub async fn open(&mut self, url: &str) -> String {
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

    /// Evaluates JavaScript in a page and returns its value.
    pub async fn evaluate(&mut self, session: &str, expression: &str) -> Value {
        let result = self
            .call(
                Some(session),
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        assert!(result["exceptionDetails"].is_null(), "{result}");
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is `true` (an exception, while the page loads, is not).
    pub async fn wait_for(&mut self, session: &str, what: &str, expression: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let check =
            format!("(() => {{ try {{ return {expression}; }} catch (e) {{ return false; }} }})()");
        while self.evaluate(session, &check).await != json!(true) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never: {what}; the page shows {}",
                self.evaluate(session, &format!("(() => {{ try {{ return {LINES}; }} catch (e) {{ return String(e); }} }})()")).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The page's lines, each as `colour|text`.
pub const LINES: &str = "[...document.querySelectorAll('#messages li')].map(li => li.style.color + '|' + li.textContent)";

pub fn line_is(colour: &str, text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#messages li')].some(li => li.style.color === {} && li.textContent.includes({}))",
        json!(colour),
        json!(text)
    )
}

const ONLINE: &str = "document.getElementById('status').className === 'online'";

/// How many of the page's lines have `colour` and contain `text`.
fn lines_counted(colour: &str, text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#messages li')].filter(li => li.style.color === {} && li.textContent.includes({})).length",
        json!(colour),
        json!(text)
    )
}

/// The name the page shows as its own.
const ME: &str = "document.getElementById('me').textContent";

const HOSTILE: &str = "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\">";

#[tokio::test]
async fn two_pages_chat_and_what_users_write_stays_text() {
    let app = spawn_app(TestBackend::Sqlite).await;
    let mut browser = Browser::launch().await;
    // `tab` only tells the pages apart here: the page does not read it.
    let page = |tab: &str| format!("{}/chat?room=browser&tab={tab}", app.service.address);

    // Ann is a guest: the server names her.
    let ann = browser.open(&page("ann")).await;
    browser.wait_for(&ann, "ann is online", ONLINE).await;
    browser
        .wait_for(&ann, "a blue welcome", &line_is("blue", "Welcome"))
        .await;
    browser
        .wait_for(
            &ann,
            "ann's guest name shown",
            &format!("{ME}.startsWith('guest-')"),
        )
        .await;
    // Ben signs in: his page connects with the token and he chats as his account.
    let ben = browser.open(&page("ben")).await;
    browser.wait_for(&ben, "ben is online", ONLINE).await;
    let token = token_of(21, "Ben");
    browser
        .evaluate(&ben, &format!("chatAuth.useToken({}); true", json!(token)))
        .await;
    browser
        .wait_for(
            &ben,
            "ben online as Ben",
            &format!("{ONLINE} && {ME} === 'Ben'"),
        )
        .await;
    // The token went in the subprotocol list, which the server answered with `bearer`; the
    // URL (which servers log) has none.
    assert_eq!(
        browser
            .evaluate(
                &ben,
                &format!(
                    "[socket.protocol, socket.url.includes({}), socket.url.includes('access_token'), sessionStorage.getItem('chat.accessToken') === {}, document.getElementById('signin').hidden]",
                    json!(token),
                    json!(token)
                )
            )
            .await,
        json!(["bearer", false, false, true, true])
    );
    browser
        .wait_for(
            &ann,
            "ben's arrival in green",
            &line_is("green", "Ben joined"),
        )
        .await;
    // A reload keeps the sign-in (sessionStorage).
    browser.evaluate(&ben, "location.reload(); true").await;
    browser
        .wait_for(
            &ann,
            "ben back after his reload",
            &format!("{} === 2", lines_counted("green", "Ben joined")),
        )
        .await;
    browser
        .wait_for(
            &ben,
            "ben online as Ben again",
            &format!("{ONLINE} && {ME} === 'Ben'"),
        )
        .await;
    // Ben writes: Ann sees it under his account name.
    browser
        .evaluate(
            &ben,
            "document.getElementById('input').value = 'hi from Ben'; document.getElementById('send').click(); true",
        )
        .await;
    browser
        .wait_for(&ann, "Ben's message", &line_is("", "Ben:hi from Ben"))
        .await;

    // Ann types a hostile message and presses Send.
    browser
        .evaluate(
            &ann,
            &format!(
                "document.getElementById('input').value = {}; document.getElementById('send').click(); true",
                json!(HOSTILE)
            ),
        )
        .await;
    browser
        .wait_for(&ben, "ann's message on ben's page", &line_is("", HOSTILE))
        .await;
    // Shown as text: no element was created from it, no script ran.
    assert_eq!(
        browser
            .evaluate(
                &ben,
                "document.querySelectorAll('#messages script, #messages img').length"
            )
            .await,
        json!(0)
    );
    for session in [&ann, &ben] {
        assert_eq!(
            browser.evaluate(session, "typeof window.pwned").await,
            json!("undefined")
        );
    }

    let screenshot = browser
        .call(
            Some(&ben),
            "Page.captureScreenshot",
            json!({"format": "png"}),
        )
        .await;
    let png = decode_base64(screenshot["data"].as_str().expect("PNG data"));
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chat-browser.png");
    std::fs::write(&path, &png).expect("write the screenshot");

    // Ben closes his page: ann sees him leave, in red (the second time: the reload was one).
    let targets = browser.call(None, "Target.getTargets", json!({})).await;
    let ben_target = targets["targetInfos"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["url"].as_str().is_some_and(|url| url.contains("tab=ben")))
        .expect("ben's page")["targetId"]
        .clone();
    browser
        .call(None, "Target.closeTarget", json!({"targetId": ben_target}))
        .await;
    browser
        .wait_for(
            &ann,
            "ben leaving in red",
            &format!("{} === 2", lines_counted("red", "Ben left")),
        )
        .await;

    // The server restarts on the same port: the page reconnects by itself and shows history.
    let port = app
        .service
        .address
        .rsplit(':')
        .next()
        .and_then(|port| port.parse::<u16>().ok())
        .expect("the port");
    let mut settings = app.service.settings.clone();
    settings.address.set_port(port);
    let chat = app.chat.clone();
    app.stop().await;
    browser
        .wait_for(
            &ann,
            "the page notices",
            "document.getElementById('status').textContent.startsWith('disconnected')",
        )
        .await;
    let _app = spawn_with(settings, chat).await;
    browser.wait_for(&ann, "ann is back online", ONLINE).await;
    browser
        .wait_for(
            &ann,
            "two welcomes and the history",
            &format!(
                "[...document.querySelectorAll('#messages li.history')].some(li => li.textContent.includes({})) && {}",
                json!(HOSTILE),
                "[...document.querySelectorAll('#messages li')].filter(li => li.style.color === 'blue').length === 2"
            ),
        )
        .await;
}

/// Standard base64 (what DevTools sends screenshots in).
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0_u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c) << (18 - 6 * i);
        }
        let produced = chunk.len() * 6 / 8;
        for i in 0..produced {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(decode_base64("aGk="), b"hi");
    assert_eq!(decode_base64("aGVsbG8="), b"hello");
    assert_eq!(decode_base64("YWJj"), b"abc");
}
