//! The official OpenTelemetry Python SDK's OTLP exporters — gRPC,
//! HTTP/protobuf and HTTP/JSON — against a collector on the real engine.
//! Needs `.venv` from `scripts/setup-python.sh` (PyPI); the test fails with
//! that instruction when it is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use clickhouse::Row;
use serde::Deserialize;

#[derive(Debug, Row, Deserialize)]
struct Got {
    service_name: String,
    name: String,
    tenant_id: String,
    provider: String,
    request_model: String,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cost_positive: bool,
    input_messages: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_grpc_http_protobuf_and_http_json_arrives_normalised() {
    common::init_tracing();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} missing: run scripts/setup-python.sh (installs the OpenTelemetry Python SDK from PyPI)",
        python.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/export.py");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::store_at(dir.path()).await);
    let run = common::start(&common::test_config(dir.path()), Arc::clone(&store)).await;
    for (transport, endpoint) in [
        ("grpc", run.grpc_url()),
        ("http-protobuf", run.http_url("/v1/traces")),
        ("http-json", run.http_url("/v1/traces")),
    ] {
        let out = tokio::process::Command::new(&python)
            .arg(&script)
            .args([transport, &endpoint])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{transport}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    run.stop().await;
    let rows: Vec<Got> = store
        .reader()
        .query(
            "SELECT toString(service_name) AS service_name, toString(name) AS name,
                    toString(tenant_id) AS tenant_id, toString(provider) AS provider,
                    toString(request_model) AS request_model, input_tokens, output_tokens,
                    cost_total > 0 AS cost_positive, input_messages
             FROM loupe.spans WHERE llm_call ORDER BY service_name",
        )
        .fetch_all()
        .await
        .unwrap();
    let services: Vec<&str> = rows.iter().map(|r| r.service_name.as_str()).collect();
    assert_eq!(
        services,
        ["python-grpc", "python-http-json", "python-http-protobuf"]
    );
    for r in &rows {
        let transport = r.service_name.trim_start_matches("python-");
        assert_eq!(r.name, "chat claude-haiku-4-5");
        assert_eq!(r.tenant_id, "pyco");
        assert_eq!(r.provider, "anthropic");
        assert_eq!(r.request_model, "claude-haiku-4-5");
        assert_eq!((r.input_tokens, r.output_tokens), (Some(200), Some(40)));
        assert!(r.cost_positive, "{r:?}");
        assert!(
            r.input_messages.contains(&format!("hi from {transport}")),
            "{r:?}"
        );
    }
    let parents = common::count(
        &store,
        "SELECT count() FROM loupe.spans WHERE name = 'handle_request'",
    )
    .await;
    assert_eq!(parents, 3);
    common::close(store).await;
}
