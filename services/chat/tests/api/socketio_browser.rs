//! The seed's own chat page (`tests/fixtures/seed-chat.html`, copied unchanged from the
//! seed) in headless Chromium: it loads `/socket.io/socket.io.js` and calls `io()`, so it is
//! served from the chat's own origin here, by a small front that answers `/seed.html` and
//! passes every other request through to chat-service (one request a connection, a WebSocket
//! as it is). Two pages: the first
//! sees the second join (green), a message from each reaches both, and the first sees the
//! second leave (red).

use serde_json::json;
use testing::{Browser, TestBackend};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::{browser::line_is, helpers::spawn_app};

/// The seed's page.
const SEED_PAGE: &str = include_str!("../fixtures/seed-chat.html");

/// Serves `GET /seed.html` on a port of its own and splices every other connection to
/// `upstream` (`127.0.0.1:<port>`); returns its address.
async fn seed_front(upstream: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(serve(client, upstream.clone()));
        }
    });
    address
}

/// One connection: the page, or a splice to the chat.
async fn serve(mut client: TcpStream, upstream: String) {
    let mut head = Vec::new();
    let mut buffer = [0_u8; 4096];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match client.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    if head.starts_with(b"GET /seed.html ") || head.starts_with(b"GET /seed.html?") {
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{SEED_PAGE}",
            SEED_PAGE.len()
        );
        let _ = client.write_all(response.as_bytes()).await;
        return;
    }
    let Ok(mut chat) = TcpStream::connect(&upstream).await else {
        return;
    };
    if chat.write_all(&one_request(&head)).await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut chat).await;
    }
}

/// The request as read, made the connection's only one (`Connection: close`) unless it is
/// a WebSocket upgrade: the browser's next request, on a new connection, is seen here too.
fn one_request(read: &[u8]) -> Vec<u8> {
    let end = read
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a whole head")
        + 4;
    let head = String::from_utf8_lossy(&read[..end]);
    if head.to_ascii_lowercase().contains("upgrade: websocket") {
        return read.to_vec();
    }
    let mut lines: Vec<&str> = head
        .trim_end()
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    let mut request = format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes();
    request.extend_from_slice(&read[end..]);
    request
}

/// How many of the page's lines have `colour` and contain `text`.
fn count(colour: &str, text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#messages li')].filter(li => li.style.color === {} && li.textContent.includes({})).length",
        json!(colour),
        json!(text)
    )
}

/// Types `text` and submits the page's form.
fn say(text: &str) -> String {
    format!(
        "document.getElementById('input').value = {}; document.getElementById('form').requestSubmit(); true",
        json!(text)
    )
}

#[tokio::test]
async fn the_seeds_page_chats_through_socket_io_in_a_browser() {
    testing::skip_unless!(Chromium);
    let app = spawn_app(TestBackend::Sqlite).await;
    let upstream = app.service.address.trim_start_matches("http://").to_owned();
    let front = seed_front(upstream).await;
    let mut browser = Browser::launch_with_window(800, 600).await;
    let page = |tab: &str| format!("{front}/seed.html?tab={tab}");

    let first = browser.open(&page("first")).await;
    browser
        .wait_for(&first, "the welcome, in blue", &line_is("blue", "Welcome"))
        .await;
    let second = browser.open(&page("second")).await;
    browser
        .wait_for(&second, "the welcome, in blue", &line_is("blue", "Welcome"))
        .await;
    browser
        .wait_for(
            &first,
            "the second page joining, in green",
            &line_is("green", "joined"),
        )
        .await;

    browser
        .evaluate(&first, &say("hola desde la primera"))
        .await;
    browser.evaluate(&second, &say("y desde la segunda")).await;
    for session in [&first, &second] {
        for text in ["hola desde la primera", "y desde la segunda"] {
            browser
                .wait_for(session, text, &format!("{} === 1", count("", text)))
                .await;
        }
    }
    // The seed prints `<time>: <text>` from the message's timestamp: a valid one.
    assert_eq!(
        browser
            .evaluate(
                &first,
                "[...document.querySelectorAll('#messages li')].some(li => li.textContent.startsWith('Invalid Date'))"
            )
            .await,
        json!(false)
    );

    let targets = browser.call(None, "Target.getTargets", json!({})).await;
    let second_target = targets["targetInfos"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|target| {
            target["url"]
                .as_str()
                .is_some_and(|url| url.contains("tab=second"))
        })
        .expect("the second page")["targetId"]
        .clone();
    browser
        .call(
            None,
            "Target.closeTarget",
            json!({"targetId": second_target}),
        )
        .await;
    browser
        .wait_for(
            &first,
            "the second page leaving, in red",
            &line_is("red", "left"),
        )
        .await;
}
