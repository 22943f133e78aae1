//! The web page in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `.ci/run`), driven over the DevTools protocol. Two pages chat, a guest and a signed-in user
//! (its token handed to the page's `chatAuth.useToken`, as its sign-in form does with the
//! login's), system messages have the seed's colours, a `<script>` message is shown as text,
//! the page reconnects by itself after a restart. A screenshot is written to
//! `$CARGO_TARGET_TMPDIR/chat-browser.png`.

use serde_json::json;
use testing::{Browser, TestBackend};

use crate::helpers::{spawn_app, spawn_with, token_of};

/// Whether one of the page's lines has `colour` and contains `text`.
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
    testing::skip_unless!(Chromium);
    let app = spawn_app(TestBackend::Sqlite).await;
    let mut browser = Browser::launch_with_window(800, 600).await;
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

    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chat-browser.png");
    browser.screenshot(&ben, &path).await;

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
