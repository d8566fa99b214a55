//! The official OpenTelemetry Rust SDK and OTLP exporter, over gRPC (gzip) and
//! HTTP/protobuf, against a collector on the real engine: spans arrive with
//! the right normalised fields.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use clickhouse::Row;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span, Tracer, TracerProvider};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;

#[derive(Debug, Row, Deserialize)]
struct Got {
    tenant_id: String,
    service_name: String,
    provider: String,
    request_model: String,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    counted: bool,
    cost_positive: bool,
    input_messages: String,
    price_status: String,
}

/// Emit one GenAI chat span per transport through the SDK (simple processor,
/// so each span is exported as it ends).
fn emit(exporter: opentelemetry_otlp::SpanExporter, transport: &str) {
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(format!("rust-{transport}"))
                .with_attribute(KeyValue::new("tenant.id", "acme"))
                .build(),
        )
        .build();
    let tracer = provider.tracer("loupe-test");
    let mut span = tracer.start("chat gpt-4o-mini");
    span.set_attributes([
        KeyValue::new("gen_ai.operation.name", "chat"),
        KeyValue::new("gen_ai.provider.name", "openai"),
        KeyValue::new("gen_ai.request.model", "gpt-4o-mini"),
        KeyValue::new("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
        KeyValue::new("gen_ai.response.id", format!("chatcmpl-rust-{transport}")),
        KeyValue::new("gen_ai.usage.input_tokens", 120i64),
        KeyValue::new("gen_ai.usage.output_tokens", 30i64),
        KeyValue::new(
            "gen_ai.input.messages",
            format!(r#"[{{"role":"user","parts":[{{"type":"text","content":"hello over {transport}"}}]}}]"#),
        ),
    ]);
    span.end();
    provider.force_flush().expect("flush");
    provider.shutdown().expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_over_grpc_and_http_protobuf_arrives_normalised() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::store_at(dir.path()).await);
    let run = common::start(&common::test_config(dir.path()), Arc::clone(&store)).await;

    let grpc = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(run.grpc_url())
        .with_compression(opentelemetry_otlp::Compression::Gzip)
        .build()
        .unwrap();
    let http = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(run.http_url("/v1/traces"))
        .build()
        .unwrap();
    // The SDK's simple processor blocks on the export: run it off the async
    // workers, inside this runtime's context (tonic and reqwest need it).
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _rt = handle.enter();
        emit(grpc, "grpc");
        emit(http, "http");
    })
    .await
    .unwrap();

    run.stop().await;
    let rows: Vec<Got> = store
        .reader()
        .query(
            "SELECT toString(tenant_id) AS tenant_id, toString(service_name) AS service_name,
                    toString(provider) AS provider, toString(request_model) AS request_model,
                    input_tokens, output_tokens, counted, cost_total > 0 AS cost_positive,
                    input_messages, toString(price_status) AS price_status
             FROM loupe.spans ORDER BY service_name",
        )
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, transport) in rows.iter().zip(["grpc", "http"]) {
        assert_eq!(row.service_name, format!("rust-{transport}"));
        assert_eq!(row.tenant_id, "acme");
        assert_eq!(row.provider, "openai");
        assert_eq!(row.request_model, "gpt-4o-mini");
        assert_eq!((row.input_tokens, row.output_tokens), (Some(120), Some(30)));
        assert!(row.counted && row.cost_positive, "{row:?}");
        assert_eq!(row.price_status, "priced");
        assert!(
            row.input_messages
                .contains(&format!("hello over {transport}")),
            "{row:?}"
        );
    }
    common::close(store).await;
}
