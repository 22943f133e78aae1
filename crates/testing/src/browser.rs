//! A headless Chromium driven over the DevTools protocol, for the tests of the platform's web
//! pages ([`Browser`]): open a page, evaluate JavaScript in it, wait for a condition, take a
//! screenshot. The binary is [`chromium_binary`] (Debian's `chromium`, or `$CHROMIUM`); a test
//! that uses it starts with `skip_unless!(Chromium)`, so without it the test is skipped with one
//! line (and fails under `CI=true`).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

use crate::chromium_binary;

/// How long the browser may take for a step (it starts slowly on a busy machine).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A headless Chromium with its own fresh profile, and a DevTools connection to it. Dropped, the
/// browser is killed and its profile removed.
pub struct Browser {
    /// The browser process.
    child: Child,
    /// The browser's DevTools WebSocket.
    devtools: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    /// The id of the last DevTools call.
    next_id: u64,
    /// The profile directory.
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    /// Starts Chromium with a 1200×900 window.
    pub async fn launch() -> Self {
        Self::launch_with_window(1200, 900).await
    }

    /// Starts Chromium with a `width`×`height` window (what a screenshot shows).
    pub async fn launch_with_window(width: u32, height: u32) -> Self {
        let binary = chromium_binary();
        let profile = std::env::temp_dir().join(format!(
            "platform-chromium-{}",
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
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("starting {binary} (Debian package `chromium`, or set CHROMIUM): {error}")
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

    /// Calls a DevTools method (in a page's session, or on the browser) and returns its result;
    /// panics on a DevTools error.
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

    /// Opens `url` in a new page; returns its session.
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

    /// Evaluates JavaScript in a page and returns its value (a promise's, awaited); panics when
    /// it throws.
    pub async fn evaluate(&mut self, session: &str, expression: &str) -> Value {
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

    /// Polls `expression` until it is `true` (an exception, while the page loads, is not);
    /// panics past [`PATIENCE`] with `what` and the text the page shows.
    pub async fn wait_for(&mut self, session: &str, what: &str, expression: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let check =
            format!("(() => {{ try {{ return {expression}; }} catch (e) {{ return false; }} }})()");
        while self.evaluate(session, &check).await != json!(true) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never: {what}; the page shows {}",
                self.evaluate(
                    session,
                    "(() => { try { return document.body.innerText; } catch (e) { return String(e); } })()"
                )
                .await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Writes a PNG screenshot of a page to `path`.
    pub async fn screenshot(&mut self, session: &str, path: &Path) {
        let shot = self
            .call(
                Some(session),
                "Page.captureScreenshot",
                json!({"format": "png"}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("PNG data"))
            .expect("base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, &png)
            .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
    }
}
