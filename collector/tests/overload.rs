//! Overload gets OTLP's retryable answers (429 / 503 with Retry-After, gRPC
//! UNAVAILABLE) and memory stays flat: the queue, the spool and concurrent
//! decoding are bounded. In-memory writer, no engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

fn export(seed: u64, spans: u64, body_bytes: usize) -> ExportTraceServiceRequest {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let text = "x".repeat(body_bytes / spans as usize);
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..spans)
                    .map(|i| Span {
                        trace_id: (u128::from(seed) + 1).to_be_bytes().to_vec(),
                        span_id: (seed * 1000 + i + 1).to_be_bytes().to_vec(),
                        name: "chat".into(),
                        start_time_unix_nano: t,
                        end_time_unix_nano: t + 1,
                        attributes: vec![KeyValue {
                            key: "gen_ai.prompt".into(),
                            value: Some(AnyValue {
                                value: Some(Value::StringValue(text.clone())),
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_gets_retryable_answers_and_memory_stays_flat() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(common::MemWriter::default());
    writer.delay_ms.store(400, Relaxed);
    writer.discard.store(true, Relaxed);
    let cfg = collector::CollectorConfig {
        queue_capacity_bytes: 2 << 20,
        queue_wait_ms: 20,
        spool_max_bytes: 4 << 20,
        spool_segment_bytes: 1 << 20,
        max_concurrent_requests: 16,
        writer_concurrency: 1,
        join_wait_ms: 0,
        ..common::test_config(dir.path())
    };
    let run = common::start_with(&cfg, Arc::clone(&writer)).await;
    let url = run.http_url("/v1/traces");
    let client = common::http_client();

    // Phase 1, slow store: the queue fills → 429 with Retry-After.
    // Phase 2, store down: the spool fills → 503 with Retry-After.
    // All the while, RSS is sampled.
    let peak = Arc::new(AtomicU64::new(0));
    let baseline = rss_bytes();
    let sampler = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_bytes(), Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    let mut retry_after_seen = 0u64;
    let sent_bytes = Arc::new(AtomicU64::new(0));
    for phase in 0..2u64 {
        if phase == 1 {
            writer.down.store(true, Relaxed);
            writer.delay_ms.store(0, Relaxed);
        }
        let mut tasks = Vec::new();
        for w in 0..24u64 {
            let (client, url, sent_bytes) = (client.clone(), url.clone(), Arc::clone(&sent_bytes));
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for r in 0..50u64 {
                    let body =
                        export(phase * 1_000_000 + w * 1000 + r, 20, 64 * 1024).encode_to_vec();
                    sent_bytes.fetch_add(body.len() as u64, Relaxed);
                    let resp = client
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    let retry = resp.headers().get("retry-after").is_some();
                    out.push((resp.status().as_u16(), retry));
                }
                out
            }));
        }
        for t in tasks {
            for (s, retry) in t.await.unwrap() {
                *statuses.entry(s).or_default() += 1;
                if retry {
                    retry_after_seen += 1;
                    assert!(s == 429 || s == 503, "Retry-After on {s}");
                }
            }
        }
    }
    sampler.abort();
    let growth = peak.load(Relaxed).saturating_sub(baseline);
    let sent = sent_bytes.load(Relaxed);
    eprintln!(
        "statuses {statuses:?}; sent {} MiB; RSS baseline {} MiB, peak growth {} MiB",
        sent >> 20,
        baseline >> 20,
        growth >> 20
    );
    assert!(statuses.get(&429).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(statuses.get(&503).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(statuses.get(&200).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert_eq!(
        retry_after_seen,
        statuses.get(&429).copied().unwrap_or(0) + statuses.get(&503).copied().unwrap_or(0)
    );
    assert!(sent > 150 << 20, "sent only {sent} bytes");
    assert!(
        growth < 64 << 20,
        "RSS grew by {} MiB under overload",
        growth >> 20
    );

    // gRPC says UNAVAILABLE (retryable) while the spool is full. The spool
    // may still hold one export smaller than the batches refused last (a
    // batch can gather several requests), so send until one is refused.
    let mut grpc = TraceServiceClient::connect(run.grpc_url()).await.unwrap();
    let mut refused = None;
    for i in 0..8u64 {
        if let Err(e) = grpc.export(export(9_999_000 + i, 20, 64 * 1024)).await {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("a full spool refuses gRPC exports");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    let ready = client.get(run.http_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready with a full spool");

    // The store comes back: the spool drains, readiness returns.
    writer.down.store(false, Relaxed);
    let ready_url = run.http_url("/readyz");
    common::eventually("ready again", 30, || {
        let (client, ready_url) = (client.clone(), ready_url.clone());
        async move { client.get(&ready_url).send().await.unwrap().status() == 200 }
    })
    .await;
    run.stop().await;
}
