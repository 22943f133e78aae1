//! schemathesis (PyPI) against the OpenAPI documents of users, products and media, through the
//! gateway: generated valid and invalid requests must never get a 5xx, and every response must
//! match the document. Requests carry an admin's token, so writes are exercised too.

use std::{process::Command, time::Duration};

use e2e::Platform;

#[tokio::test]
async fn schemathesis_finds_no_server_errors_or_schema_violations() {
    testing::skip_unless!(Schemathesis);
    let st = testing::schemathesis_binary();
    let platform = Platform::stack().await.expect("the stack starts");
    // As an admin, so the write operations run past the access check.
    let authorization = format!("Authorization: Bearer {}", platform.admin_token().await);
    let mut failures = Vec::new();
    for document in [
        "/api/users/openapi.json",
        "/api/products/openapi.json",
        "/api/media/openapi.json",
    ] {
        let output = Command::new(&st)
            .args([
                "run",
                &platform.url(document),
                "--url",
                &platform.gateway,
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
                "--max-examples",
                "40",
                "--seed",
                "1",
                "--header",
                &authorization,
            ])
            .env("NO_COLOR", "1")
            // Its crash cache (`.schemathesis/`) goes to the scratch directory, not the tree.
            .current_dir(platform.scratch())
            .output()
            .expect("schemathesis runs");
        if !output.status.success() {
            failures.push(format!(
                "schemathesis found problems in {document}:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    platform
        .stop(Duration::from_secs(15))
        .expect("the stack exits 0 on SIGTERM");
}
