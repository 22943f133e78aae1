//! GraphiQL in a real browser: headless Chromium (Debian's `chromium`, or `$CHROMIUM`) driven
//! over the DevTools protocol loads the page from a running graphql-service. With introspection
//! on, its Docs explorer lists the schema's types; with `GRAPHQL_INTROSPECTION=false` the page
//! says introspection is off, and queries still run from it. Fails, not skips, without
//! Chromium.

use serde_json::json;
use testing::{Browser, TestBackend, TestService, fresh_database};

use crate::helpers::{graphql_settings, spawn_graphql};

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
    testing::skip_unless!(Chromium);
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
