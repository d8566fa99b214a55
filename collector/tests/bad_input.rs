//! Bad input on both transports gets the right status and a message saying
//! what was wrong, and the collector keeps serving. Runs against an in-memory
//! writer (no engine), so all cases share one process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::Arc;

use collector::grpc::{Export, Traces, export_path};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

const PB: &str = "application/x-protobuf";

fn span(trace: &[u8], id: &[u8], attrs: Vec<KeyValue>) -> Span {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    Span {
        trace_id: trace.to_vec(),
        span_id: id.to_vec(),
        name: "chat gpt-4o-mini".into(),
        start_time_unix_nano: now,
        end_time_unix_nano: now + 1_000_000,
        attributes: attrs,
        ..Default::default()
    }
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn export(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Sends any bytes as the gRPC message of `path` (what a broken client could
/// send) and decodes the reply as an export reply.
async fn raw_export(
    url: String,
    path: &str,
    message: Vec<u8>,
) -> Result<ExportTraceServiceResponse, tonic::Status> {
    struct Raw;
    impl tonic::codec::Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = ExportTraceServiceResponse;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }
    impl tonic::codec::Encoder for Raw {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(
            &mut self,
            item: Vec<u8>,
            dst: &mut tonic::codec::EncodeBuf<'_>,
        ) -> Result<(), tonic::Status> {
            bytes::BufMut::put_slice(dst, &item);
            Ok(())
        }
    }
    impl tonic::codec::Decoder for Raw {
        type Item = ExportTraceServiceResponse;
        type Error = tonic::Status;
        fn decode(
            &mut self,
            src: &mut tonic::codec::DecodeBuf<'_>,
        ) -> Result<Option<Self::Item>, tonic::Status> {
            ExportTraceServiceResponse::decode(src)
                .map(Some)
                .map_err(|e| tonic::Status::internal(e.to_string()))
        }
    }
    let channel = tonic::transport::Channel::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    client
        .unary(tonic::Request::new(message), path.parse().unwrap(), Raw)
        .await
        .map(tonic::Response::into_inner)
}

async fn status_and_text(r: reqwest::Response) -> (u16, String) {
    let s = r.status().as_u16();
    let b = r.bytes().await.unwrap();
    (s, String::from_utf8_lossy(&b).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_gets_its_status_and_message_and_the_collector_keeps_serving() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(common::MemWriter::default());
    let cfg = collector::CollectorConfig {
        max_body_bytes: 256 * 1024,
        max_decompressed_bytes: 1024 * 1024,
        max_attribute_bytes: 1000,
        max_spans_per_request: 10,
        join_wait_ms: 0,
        ..common::test_config(dir.path())
    };
    let run = common::start_with(&cfg, Arc::clone(&writer)).await;
    let c = common::http_client();
    let traces = run.http_url("/v1/traces");
    let good = export(vec![span(&[1; 16], &[1; 8], vec![])]).encode_to_vec();

    // (content type, content encoding, body, want status, message fragment)
    let bomb = gzip(&vec![b'a'; 8 << 20]);
    let too_many = export(
        (1..=11u8)
            .map(|i| span(&[i; 16], &[i; 8], vec![]))
            .collect(),
    )
    .encode_to_vec();
    let mut bad_utf8 = export(vec![span(&[1; 16], &[1; 8], vec![])]).encode_to_vec();
    let pos = bad_utf8.windows(4).position(|w| w == b"chat").unwrap();
    bad_utf8[pos] = 0xff;
    let truncated = good[..good.len() - 3].to_vec();
    type Case<'a> = (Option<&'a str>, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            Some("text/plain"),
            None,
            good.clone(),
            415,
            "unsupported content type",
        ),
        (None, None, good.clone(), 415, "unsupported content type"),
        (Some(PB), None, vec![], 400, "empty"),
        (
            Some(PB),
            None,
            b"\xff\xfe garbage \x00".to_vec(),
            400,
            "not a valid OTLP protobuf",
        ),
        (Some(PB), None, truncated, 400, "not a valid OTLP protobuf"),
        (Some(PB), None, bad_utf8, 400, "UTF-8"),
        (
            Some("application/json"),
            None,
            b"{\"resourceSpans\": [".to_vec(),
            400,
            "invalid OTLP/JSON at line 1",
        ),
        (
            Some("application/json"),
            None,
            b"{\"resourceSpans\": 5}".to_vec(),
            400,
            "invalid OTLP/JSON",
        ),
        (
            Some(PB),
            None,
            vec![0u8; 300 * 1024],
            413,
            "larger than the limit of 262144 bytes",
        ),
        (
            Some(PB),
            Some("gzip"),
            bomb,
            413,
            "decompressed request body is larger",
        ),
        (
            Some(PB),
            Some("gzip"),
            b"\x1f\x8b\x08\x00garbage".to_vec(),
            400,
            "not valid gzip",
        ),
        (
            Some(PB),
            Some("br"),
            good.clone(),
            415,
            "unsupported content encoding",
        ),
        (
            Some(PB),
            None,
            too_many,
            413,
            "11 spans, more than the limit of 10",
        ),
    ];
    for (ct, ce, body, want, fragment) in cases {
        let mut req = c.post(&traces).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        if let Some(ce) = ce {
            req = req.header("content-encoding", ce);
        }
        let (status, text) = status_and_text(req.send().await.unwrap()).await;
        assert_eq!(status, want, "{ct:?}/{ce:?} → {text}");
        assert!(
            text.contains(fragment),
            "{ct:?}/{ce:?}: {text:?} lacks {fragment:?}"
        );
    }

    // Invalid ids: partial success, the good span kept; reply in JSON for JSON.
    let mixed = export(vec![
        span(
            &[7; 16],
            &[7; 8],
            vec![
                kv("long", &"é".repeat(2000)),
                kv("gen_ai.request.model", "gpt-4o-mini"),
            ],
        ),
        span(&[0; 16], &[8; 8], vec![]),
        span(&[9; 5], &[9; 8], vec![]),
    ]);
    let r = common::post(&c, &traces, PB, mixed.encode_to_vec()).await;
    assert_eq!(r.status(), 200);
    let reply = ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
    let ps = reply.partial_success.expect("partial success");
    assert_eq!(ps.rejected_spans, 2);
    assert!(
        ps.error_message.contains("trace_id is all zeros"),
        "{}",
        ps.error_message
    );
    assert!(
        ps.error_message
            .contains("trace_id must be 16 bytes, got 5"),
        "{}",
        ps.error_message
    );
    let json = serde_json::to_vec(&export(vec![span(&[0; 16], &[1; 8], vec![])])).unwrap();
    let (status, text) =
        status_and_text(common::post(&c, &traces, "application/json", json).await).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["partialSuccess"]["rejectedSpans"],
        serde_json::json!(1),
        "{text}"
    );

    // The long value was cut on a char boundary with the marker, and counted.
    let stored = writer
        .batches
        .lock()
        .unwrap()
        .values()
        .flat_map(|b| b.spans.clone())
        .find(|s| s.span_id == "0707070707070707")
        .expect("good span stored");
    let long = stored
        .attributes
        .iter()
        .find(|(k, _)| k == "long")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        long.ends_with(collector::limits::TRUNCATION_MARKER),
        "{long}"
    );
    assert!(long.len() <= 1000 + collector::limits::TRUNCATION_MARKER.len());
    assert_eq!(stored.truncated, 1);

    // gRPC: invalid ids → partial success; too many spans → INVALID_ARGUMENT;
    // an oversized message is refused; the server keeps serving.
    let mut grpc = TraceServiceClient::connect(run.grpc_url()).await.unwrap();
    let reply = grpc
        .export(export(vec![
            span(&[3; 16], &[3; 8], vec![]),
            span(&[3; 16], &[0; 8], vec![]),
        ]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.partial_success.map(|p| p.rejected_spans), Some(1));
    let err = grpc
        .export(export(
            (1..=11u8)
                .map(|i| span(&[i; 16], &[i; 8], vec![]))
                .collect(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("more than the limit"),
        "{}",
        err.message()
    );
    let huge = export(vec![span(
        &[4; 16],
        &[4; 8],
        vec![kv("x", &"y".repeat(2 << 20))],
    )]);
    let err = grpc.export(huge).await.unwrap_err();
    assert_ne!(err.code(), tonic::Code::Ok);
    // The same idea gzip-compressed into a few KiB (a bomb): refused while
    // decompressing, at the limit, not after inflating all of it.
    let mut zipped = TraceServiceClient::connect(run.grpc_url())
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let bomb = export(vec![span(
        &[6; 16],
        &[6; 8],
        vec![kv("x", &"y".repeat(64 << 20))],
    )]);
    let err = zipped.export(bomb).await.unwrap_err();
    assert!(
        err.message().contains("while decompressing"),
        "{:?}: {}",
        err.code(),
        err.message()
    );
    // Bytes that are not an export: INVALID_ARGUMENT saying so (not an
    // INTERNAL error); an empty message is an empty export; any other
    // method is UNIMPLEMENTED.
    let invalid = || async {
        let (_, m) = status_and_text(c.get(run.http_url("/metrics")).send().await.unwrap()).await;
        m.lines()
            .find_map(|l| l.strip_prefix("loupe_collector_requests_invalid_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
    };
    let before = invalid().await;
    let err = raw_export(
        run.grpc_url(),
        &export_path::<Traces>(),
        b"\xff\xfe garbage \x00".to_vec(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(
        invalid().await,
        before + 1,
        "counted as invalid, as over HTTP"
    );
    assert!(
        err.message().contains("ExportTraceServiceRequest"),
        "{}",
        err.message()
    );
    let empty = raw_export(run.grpc_url(), &export_path::<Traces>(), Vec::new()).await;
    assert_eq!(empty.expect("an empty export").partial_success, None);
    let err = raw_export(
        run.grpc_url(),
        &format!("/{}/Other", Traces::SERVICE),
        export(vec![]).encode_to_vec(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");

    let ok = grpc
        .export(export(vec![span(&[5; 16], &[5; 8], vec![])]))
        .await;
    assert!(ok.is_ok(), "{ok:?}");

    // Still serving, and it counted what it refused.
    let (status, _) = status_and_text(c.get(run.http_url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let (status, _) = status_and_text(c.get(run.http_url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let (_, metrics) = status_and_text(c.get(run.http_url("/metrics")).send().await.unwrap()).await;
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in:\n{metrics}"))
    };
    assert!(value("loupe_collector_requests_invalid_total") >= 14);
    assert_eq!(
        value("loupe_collector_spans_rejected_total"),
        3 + 1 + 11 + 11
    );
    assert_eq!(value("loupe_collector_spans_truncated_total"), 1);
    assert!(value("loupe_collector_spans_accepted_total") >= 3);
    run.stop().await;
}
