//! GraphiQL in a real browser: headless Chromium (Debian's `chromium`, or `$CHROMIUM`) driven
//! over the DevTools protocol loads the page from a running graphql-service. With introspection
//! on, its Docs explorer lists the schema's types; with `GRAPHQL_INTROSPECTION=false` the page
//! says introspection is off, and queries still run from it. Fails, not skips, without
//! Chromium.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use testing::{TestBackend, TestService, fresh_database};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

use crate::helpers::{graphql_settings, spawn_graphql};

/// How long the browser may take for a step (it starts slowly on a busy machine).
const PATIENCE: Duration = Duration::from_secs(30);

/// A headless Chromium and a DevTools connection to it.
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
            "platform-graphiql-chromium-{}",
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
                "--window-size=1200,900",
            ])
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

    /// Opens `url` in a new page; returns its session.
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

    /// Evaluates JavaScript in a page and returns its value.
    async fn evaluate(&mut self, session: &str, expression: &str) -> Value {
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
    async fn wait_for(&mut self, session: &str, what: &str, expression: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let check =
            format!("(() => {{ try {{ return {expression}; }} catch (e) {{ return false; }} }})()");
        while self.evaluate(session, &check).await != json!(true) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never: {what}; the page shows {}",
                self.evaluate(session, "document.body.innerText").await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The Docs explorer's button.
const DOCS_BUTTON: &str =
    r#"document.querySelector('button[aria-label="Show Documentation Explorer"]')"#;
/// The type names the Docs explorer lists.
const LISTED_TYPES: &str = "[...document.querySelectorAll('.graphiql-doc-explorer a.graphiql-doc-explorer-type-name')].map(a => a.textContent)";
/// The notice the page shows when the server refuses introspection.
const NOTICE_SHOWN: &str = "!document.getElementById('introspection-off').hidden";

/// graphql-service with introspection `on` or off (introspection and the queries here call
/// neither users-service nor products-service).
async fn graphql(introspection: bool) -> TestService {
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    let mut settings = graphql_settings(database, "http://127.0.0.1:9", "http://127.0.0.1:9");
    settings.limits.introspection = introspection;
    spawn_graphql(settings).await
}

/// Opens GraphiQL from `graphql` and its Docs explorer; returns the page's session.
async fn open_docs(browser: &mut Browser, graphql: &TestService) -> String {
    let page = browser.open(&graphql.url("/graphql")).await;
    browser
        .wait_for(
            &page,
            "GraphiQL's Docs button",
            &format!("{DOCS_BUTTON} !== null"),
        )
        .await;
    browser
        .evaluate(&page, &format!("{DOCS_BUTTON}.click(); true"))
        .await;
    browser
        .wait_for(
            &page,
            "the Docs explorer",
            "document.querySelector('.graphiql-doc-explorer') !== null",
        )
        .await;
    page
}

#[tokio::test]
async fn graphiql_lists_the_schema_or_says_introspection_is_off() {
    let mut browser = Browser::launch().await;

    let open = graphql(true).await;
    let page = open_docs(&mut browser, &open).await;
    browser
        .wait_for(
            &page,
            "the schema's types in the Docs explorer",
            &format!("{LISTED_TYPES}.includes('User')"),
        )
        .await;
    let listed = browser.evaluate(&page, LISTED_TYPES).await;
    for name in [
        "Query",
        "Mutation",
        "Subscription",
        "User",
        "Post",
        "Product",
    ] {
        assert!(
            listed.as_array().expect("names").contains(&json!(name)),
            "{name} in the Docs explorer: {listed}"
        );
    }
    assert_eq!(browser.evaluate(&page, NOTICE_SHOWN).await, json!(false));

    let closed = graphql(false).await;
    let page = open_docs(&mut browser, &closed).await;
    browser
        .wait_for(&page, "the introspection-off notice", NOTICE_SHOWN)
        .await;
    let notice = browser
        .evaluate(
            &page,
            "document.getElementById('introspection-off').innerText",
        )
        .await;
    assert!(
        notice
            .as_str()
            .is_some_and(|text| text.contains("Introspection is off")
                && text.contains("GRAPHQL_INTROSPECTION=false")),
        "{notice}"
    );
    assert_eq!(browser.evaluate(&page, LISTED_TYPES).await, json!([]));
    // Queries still run from the page, and the notice stays.
    browser
        .evaluate(
            &page,
            r#"document.querySelector('button[aria-label^="Execute query"]').click(); true"#,
        )
        .await;
    browser
        .wait_for(
            &page,
            "the default query's answer",
            r#"document.querySelector('.result-window').innerText.includes('"posts": []')"#,
        )
        .await;
    assert_eq!(browser.evaluate(&page, NOTICE_SHOWN).await, json!(true));
}
