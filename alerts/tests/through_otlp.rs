//! The spike alert fed the way production feeds it: back-dated spans carrying
//! `gen_ai.evaluation.result` events, exported over OTLP/HTTP to the real
//! collector, stored by the real engine, then evaluated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../store/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use alerts::Evaluator;
use alerts::config::AlertsConfig;
use alerts::state::Event;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event as SpanEvent;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

const HOUR: u64 = 3600;
const NS: u64 = 1_000_000_000;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// `per_hour` calls an hour for hours `[from_h, to_h)` before `now`, `rate`
/// of them failing their evaluation, answered by `response_model`.
fn calls(
    now: u64,
    from_h: u64,
    to_h: u64,
    per_hour: u64,
    rate: f64,
    response_model: &str,
    seq: &mut u64,
) -> Vec<Span> {
    let mut out = Vec::new();
    for h in to_h..from_h {
        let fails = (per_hour as f64 * rate).round() as u64;
        for i in 0..per_hour {
            *seq += 1;
            let t = (now - (h + 1) * HOUR) * NS + (i + 1) * (HOUR * NS / (per_hour + 1));
            let label = if i < fails { "fail" } else { "pass" };
            out.push(Span {
                trace_id: seq.to_be_bytes().repeat(2),
                span_id: seq.to_be_bytes().to_vec(),
                name: "chat gpt-4o-mini".into(),
                start_time_unix_nano: t - 500_000_000,
                end_time_unix_nano: t,
                attributes: vec![
                    kv("gen_ai.operation.name", "chat"),
                    kv("gen_ai.provider.name", "openai"),
                    kv("gen_ai.request.model", "gpt-4o-mini"),
                    kv("gen_ai.response.model", response_model),
                ],
                events: vec![SpanEvent {
                    time_unix_nano: t,
                    name: "gen_ai.evaluation.result".into(),
                    attributes: vec![
                        kv("gen_ai.evaluation.name", "ticket_schema"),
                        kv("gen_ai.evaluation.score.label", label),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
    }
    out
}

async fn export(url: &str, spans: Vec<Span>) {
    for chunk in spans.chunks(2000) {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "triage"), kv("tenant.id", "globex")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: chunk.to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let status = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/x-protobuf")
            .body(req.encode_to_vec())
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{status}");
    }
}

async fn stored(store: &store::Store, want: u64) {
    for _ in 0..200 {
        let n: u64 = store
            .reader()
            .query("SELECT count() FROM loupe.evaluations")
            .fetch_one()
            .await
            .unwrap();
        if n >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("evaluations not stored");
}

#[tokio::test]
async fn a_spike_exported_over_otlp_fires_names_the_version_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::migrated_store(&dir).await);
    let cfg = collector::CollectorConfig {
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        spool_dir: dir.path().join("spool"),
        batch_max_age_ms: 20,
        join_wait_ms: 0,
        ..Default::default()
    };
    let bound = collector::Collector::bind(&cfg).await.unwrap();
    let url = format!("http://{}/v1/traces", bound.http_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let prices = Arc::new(schemas::pricing::PriceTable::bundled().unwrap());
    let task = tokio::spawn(bound.serve(Arc::clone(&store), prices, async move {
        let _ = stop_rx.await;
    }));

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut seq = 0;
    // A week at a stable 2 %, then the last hour at 20 % on a new model version.
    export(
        &url,
        calls(
            now,
            24 * 7,
            1,
            100,
            0.02,
            "gpt-4o-mini-2024-07-18",
            &mut seq,
        ),
    )
    .await;
    export(
        &url,
        calls(now, 1, 0, 100, 0.20, "gpt-4o-mini-2025-04-14", &mut seq),
    )
    .await;
    stored(&store, 100 * 24 * 7).await;

    let mut cfg = AlertsConfig::default();
    cfg.rules = cfg
        .effective_rules()
        .into_iter()
        .filter(|r| r.name == "validation-failure-spike")
        .collect();
    let (mut ev, _) = Evaluator::new(cfg, Arc::clone(&store)).unwrap();
    let notes = ev.tick(now).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].event, Event::Firing);
    assert_eq!(notes[0].observation.key.tenant, "globex");
    assert!(
        notes[0]
            .observation
            .summary
            .contains("from gpt-4o-mini-2024-07-18 to gpt-4o-mini-2025-04-14"),
        "{}",
        notes[0].observation.summary
    );
    // The next hour is back to 2 %: resolved.
    export(
        &url,
        calls(
            now + HOUR,
            1,
            0,
            100,
            0.02,
            "gpt-4o-mini-2025-04-14",
            &mut seq,
        ),
    )
    .await;
    stored(&store, 100 * (24 * 7 + 1)).await;
    let notes = ev.tick(now + HOUR).await;
    assert_eq!(
        notes.iter().map(|n| n.event).collect::<Vec<_>>(),
        vec![Event::Resolved]
    );

    drop(ev);
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();
    assert!(
        store::Store::close_shared(store, Duration::from_secs(10)).await,
        "store released"
    );
}
