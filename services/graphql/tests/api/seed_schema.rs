//! The schema stays a superset of the seed's: graphql-js's `findBreakingChanges(seed, ours)`
//! (`tests/graphql-js/check-superset.mjs`, the `graphql` npm package pinned by its lockfile)
//! finds nothing between the seed's SDL (`tests/graphql-js/fixtures/seed-schema.graphql`) and
//! what a running graphql-service answers to graphql-js's introspection query. Any breaking
//! change fails, the built-in directives' included (`@skip`, `@include`, `@deprecated`).
//!
//! Needs `node` and `npm ci` in `tests/graphql-js`; without them the test is skipped with a
//! message, except in CI (`CI=true`), where it fails.

use std::{path::PathBuf, process::Command};

use serde_json::{Value, json};
use testing::{TestBackend, fresh_database};

use crate::{
    helpers::{GraphqlApi, graphql_settings, spawn_graphql},
    introspection_query,
};

/// `services/graphql/tests/graphql-js`.
fn graphql_js() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/graphql-js")
}

/// Whether graphql-js can run here; `false` (after saying why) when the test is to be skipped,
/// a panic in CI.
fn graphql_js_available() -> bool {
    let directory = graphql_js();
    let installed = directory
        .join("node_modules/graphql/package.json")
        .is_file();
    let node = Command::new("node").arg("--version").output().is_ok();
    if installed && node {
        return true;
    }
    let missing = if node {
        format!(
            "{} has no node_modules: run `npm ci` there",
            directory.display()
        )
    } else {
        "`node` is not installed".to_owned()
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "graphql-js schema check cannot run in CI: {missing}"
    );
    eprintln!("SKIPPED: the graphql-js schema check: {missing}");
    false
}

#[tokio::test]
async fn the_schema_is_a_superset_of_the_seeds() {
    if !graphql_js_available() {
        return;
    }
    let database = fresh_database(TestBackend::Sqlite).await.expect("database");
    // Introspection calls neither users-service nor products-service.
    let graphql = spawn_graphql(graphql_settings(
        database,
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
    ))
    .await;
    let introspection = graphql
        .graphql(introspection_query::DEFAULT, json!({}))
        .await;
    assert!(
        introspection.get("errors").is_none() && introspection["data"]["__schema"].is_object(),
        "introspection answers: {introspection}"
    );
    let file = std::env::temp_dir().join(format!(
        "graphql-introspection-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&file, introspection.to_string()).expect("write the introspection result");
    let output = Command::new("node")
        .current_dir(graphql_js())
        .arg("check-superset.mjs")
        .arg("fixtures/seed-schema.graphql")
        .arg(&file)
        .output()
        .expect("run node");
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.code().is_some_and(|code| code <= 1),
        "check-superset.mjs failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let changes: Value = serde_json::from_str(&stdout).expect("check-superset.mjs prints JSON");
    let breaking = changes["breaking"]
        .as_array()
        .expect("a list of breaking changes");
    assert!(
        breaking.is_empty(),
        "changes from the seed's schema that break its clients: {breaking:?} (all: {changes})"
    );
}
