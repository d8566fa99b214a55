//! Ingest keys, redaction and per-tenant retention, end to end: real HTTP and
//! gRPC clients, the real engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use collector::config::TenantSettings;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use schemas::ingest_keys::{KeyEntry, hash_key};
use schemas::redact::RedactionConfig;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn request(span_id: u8, resource_tenant: &str, prompt: &str) -> ExportTraceServiceRequest {
    request_aged(span_id, resource_tenant, prompt, 0)
}

/// A one-span export whose span ended `age_days` ago.
fn request_aged(
    span_id: u8,
    resource_tenant: &str,
    prompt: &str,
    age_days: u64,
) -> ExportTraceServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - age_days * 86_400 * 1_000_000_000;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "svc"), kv("tenant.id", resource_tenant)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![7; 16],
                    span_id: vec![span_id; 8],
                    name: "chat gpt-4o-mini".into(),
                    start_time_unix_nano: now - 1_000_000_000,
                    end_time_unix_nano: now,
                    attributes: vec![
                        kv("gen_ai.operation.name", "chat"),
                        kv("gen_ai.provider.name", "openai"),
                        kv("gen_ai.request.model", "gpt-4o-mini"),
                        kv(
                            "gen_ai.input.messages",
                            &format!(
                                r#"[{{"role":"user","parts":[{{"type":"text","content":{prompt:?}}}]}}]"#
                            ),
                        ),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn post(url: &str, auth: Option<&str>, req: &ExportTraceServiceRequest) -> u16 {
    let mut r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec());
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn keys_decide_the_tenant_and_redaction_and_retention_apply() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::store_at(dir.path()).await);
    let acme_key = "loupe_acme_secret_key_0123456789";
    let globex_key = "loupe_globex_secret_key_0123456789";
    let forwarder_key = "loupe_forwarder_secret_key_0123456789";
    let mut cfg = common::test_config(dir.path());
    cfg.keys = vec![
        KeyEntry {
            tenant: "acme".into(),
            sha256: hash_key(acme_key),
            name: String::new(),
            forwarder: false,
        },
        KeyEntry {
            tenant: "globex".into(),
            sha256: hash_key(globex_key),
            name: String::new(),
            forwarder: false,
        },
        KeyEntry {
            tenant: "shim".into(),
            sha256: hash_key(forwarder_key),
            name: "the shim".into(),
            forwarder: true,
        },
    ];
    cfg.tenants = BTreeMap::from([(
        "globex".to_string(),
        TenantSettings {
            retention_days: Some(30),
            body_retention_days: Some(7),
            redaction: Some(RedactionConfig {
                emails: true,
                ..Default::default()
            }),
        },
    )]);
    let run = common::start(&cfg, Arc::clone(&store)).await;
    let url = run.http_url("/v1/traces");

    // No key, a wrong key: refused, nothing stored.
    assert_eq!(post(&url, None, &request(1, "acme", "hello")).await, 401);
    assert_eq!(
        post(
            &url,
            Some("Bearer loupe_not_a_key"),
            &request(2, "acme", "hello")
        )
        .await,
        401
    );
    let mut grpc = TraceServiceClient::connect(run.grpc_url()).await.unwrap();
    let err = grpc.export(request(3, "acme", "hello")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // acme's key, claiming to be globex: stored as acme, secrets redacted.
    assert_eq!(
        post(
            &url,
            Some(&format!("Bearer {acme_key}")),
            &request(
                4,
                "globex",
                "my key is sk-proj-abcdefghijklmnopqrstuv123456 mail ana@example.com"
            )
        )
        .await,
        200
    );
    // globex over gRPC with its key in metadata: PII redacted too, shorter retention.
    let mut req = tonic::Request::new(request(5, "acme", "write to bob@example.com"));
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {globex_key}").parse().unwrap(),
    );
    grpc.export(req).await.unwrap();

    // A forwarder's key authenticates; the telemetry's own tenant stands.
    assert_eq!(
        post(
            &url,
            Some(&format!("Bearer {forwarder_key}")),
            &request(6, "initech", "hi")
        )
        .await,
        200
    );

    let mut rows: Vec<(String, String, bool, String, u16, u16)> = Vec::new();
    for _ in 0..100 {
        rows = store
            .reader()
            .query("SELECT span_id, tenant_id, redacted, input_messages, retention_days, body_retention_days FROM loupe.spans ORDER BY span_id")
            .fetch_all()
            .await
            .unwrap();
        if rows.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        rows.len(),
        3,
        "exactly the three authenticated exports: {rows:?}"
    );
    assert_eq!(
        rows[2].1, "initech",
        "a forwarder's telemetry keeps its tenant"
    );
    let (_, tenant, redacted, body, days, _) = &rows[0];
    assert_eq!(tenant, "acme", "the key's tenant wins over the telemetry's");
    assert!(
        *redacted && body.contains("[REDACTED:openai_key]") && !body.contains("sk-proj"),
        "{body}"
    );
    assert!(
        body.contains("ana@example.com"),
        "PII is only redacted where configured: {body}"
    );
    assert_eq!(*days, 3_650);
    let (_, tenant, redacted, body, days, body_days) = &rows[1];
    assert_eq!(tenant, "globex");
    assert!(*redacted && body.contains("[REDACTED:email]"), "{body}");
    assert_eq!((*days, *body_days), (30, 7));
    run.stop().await;
    common::close(store).await;
}

/// Retention is the engine's job: rows carry their tenant's days, and a TTL
/// merge deletes expired spans (and their trace index entries) and empties
/// bodies past the shorter body retention, tenant by tenant.
#[tokio::test]
async fn the_engine_expires_rows_and_bodies_by_tenant_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::store_at(dir.path()).await);
    let mut cfg = common::test_config(dir.path());
    cfg.tenants = BTreeMap::from([(
        "globex".to_string(),
        TenantSettings {
            retention_days: Some(30),
            body_retention_days: Some(7),
            redaction: None,
        },
    )]);
    let run = common::start(&cfg, Arc::clone(&store)).await;
    let url = run.http_url("/v1/traces");
    // (span id, tenant, age in days)
    let cases = [
        (1, "globex", 0),  // fresh: kept whole
        (2, "globex", 10), // past the 7-day body retention: kept, bodies gone
        (3, "globex", 40), // past the 30-day retention: deleted
        (4, "acme", 40),   // acme keeps the default (10 years): kept whole
    ];
    for (id, tenant, age) in cases {
        let mut req = request_aged(id, tenant, "a prompt worth keeping", age);
        // One trace per span, so the trace index expires per case too.
        req.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![id; 16];
        assert_eq!(post(&url, None, &req).await, 200);
    }
    // All four were inserted (the engine may already have dropped the
    // expired one in a TTL merge of its own right after the insert).
    let metrics_url = run.http_url("/metrics");
    common::eventually("four rows inserted", 10, || async {
        let m = reqwest::get(&metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        m.contains("loupe_collector_rows_inserted_total 4\n")
    })
    .await;
    // What a background TTL merge does, made to happen now.
    store
        .execute("OPTIMIZE TABLE loupe.spans FINAL")
        .await
        .unwrap();
    store
        .execute("OPTIMIZE TABLE loupe.trace_index FINAL")
        .await
        .unwrap();
    let rows: Vec<(String, String, String)> = store
        .reader()
        .query("SELECT span_id, tenant_id, input_messages FROM loupe.spans ORDER BY span_id")
        .fetch_all()
        .await
        .unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        ids,
        ["0101010101010101", "0202020202020202", "0404040404040404"],
        "globex's 40-day-old span is gone, acme's stays: {rows:?}"
    );
    assert!(rows[0].2.contains("a prompt worth keeping"), "{rows:?}");
    assert_eq!(rows[1].2, "", "body past globex's body retention emptied");
    assert!(rows[2].2.contains("a prompt worth keeping"), "{rows:?}");
    let traces: Vec<String> = store
        .reader()
        .query("SELECT trace_id FROM loupe.trace_index ORDER BY trace_id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(traces.len(), 3, "{traces:?}");
    assert!(!traces.contains(&"03".repeat(16)), "{traces:?}");
    run.stop().await;
    common::close(store).await;
}
