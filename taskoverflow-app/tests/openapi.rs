//! The API against an external tester: schemathesis, from PyPI, reads the OpenAPI document
//! `serve` generates and attacks every operation. No request may produce a 500, and every
//! error must be JSON with a message (each operation documents a `default` error body).

mod support;

use std::process::Command;

use conformance_tests::{endpoint, skip};
use support::Server;

/// How long schemathesis may fuzz, in seconds: bounded for CI; raise it for a soak.
const BUDGET_SECONDS: &str = "45";

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_undocumented_error_body() {
    let Some(schemathesis) = skip::or_skip(endpoint::schemathesis()) else {
        return;
    };
    let server = Server::start(&[]);
    let document = format!("{}/openapi.json", server.base);
    let served: serde_json::Value = reqwest::get(&document)
        .await
        .expect("the document is served")
        .json()
        .await
        .expect("it is JSON");
    assert!(
        served["paths"]["/api/v1/todos/{id}"]["put"].is_object(),
        "the document lists the routes: {served}"
    );

    let seed = fastrand::u32(..).to_string();
    let run = Command::new(&schemathesis)
        .args(["run", &document, "--no-color", "--seed", &seed])
        .args(["--max-time", BUDGET_SECONDS])
        .args([
            "--checks",
            "not_a_server_error,content_type_conformance,response_schema_conformance",
        ])
        .output()
        .expect("schemathesis runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.status.success(),
        "schemathesis failed (seed {seed}):\n{report}"
    );
    assert!(report.contains("passed"), "{report}");
    let (clean, _) = server.terminate();
    assert!(clean);
}
