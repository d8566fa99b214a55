//! Sends pre-encoded export requests at fixed concurrency over OTLP/HTTP
//! (protobuf) or OTLP/gRPC, each worker taking the next request; retryable
//! answers (429/503, UNAVAILABLE/RESOURCE_EXHAUSTED) are retried after a
//! short pause and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Buf, BufMut, Bytes};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Grpc,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "OTLP/HTTP protobuf",
            Protocol::Grpc => "OTLP/gRPC",
        }
    }
}

#[derive(Default)]
pub struct LoadResult {
    /// Latency of each successful request (the last attempt), µs.
    pub latencies_us: Vec<u64>,
    pub retries: u64,
}

const RETRY_PAUSE: Duration = Duration::from_millis(50);
const MAX_ATTEMPTS: u32 = 200;

/// Sends every request once (retrying retryable answers); fails on anything else.
pub async fn run(
    protocol: Protocol,
    addr: std::net::SocketAddr,
    requests: Arc<Vec<Bytes>>,
    concurrency: usize,
) -> anyhow::Result<LoadResult> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let next = Arc::clone(&next);
        let requests = Arc::clone(&requests);
        tasks.push(tokio::spawn(async move {
            match protocol {
                Protocol::Http => http_worker(addr, &requests, &next).await,
                Protocol::Grpc => grpc_worker(addr, &requests, &next).await,
            }
        }));
    }
    let mut out = LoadResult::default();
    for t in tasks {
        let r = t.await.context("load worker")??;
        out.latencies_us.extend(r.latencies_us);
        out.retries += r.retries;
    }
    Ok(out)
}

/// The value of one counter on the collector's `/metrics`.
pub async fn metric(addr: std::net::SocketAddr, name: &str) -> anyhow::Result<u64> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let uri: hyper::Uri = format!("http://{addr}/metrics").parse()?;
    let resp = client.get(uri).await?;
    let body = resp.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .with_context(|| format!("{name} not on /metrics"))
}

async fn http_worker(
    addr: std::net::SocketAddr,
    requests: &[Bytes],
    next: &AtomicUsize,
) -> anyhow::Result<LoadResult> {
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build_http::<Full<Bytes>>();
    let uri: hyper::Uri = format!("http://{addr}/v1/traces").parse()?;
    let mut out = LoadResult::default();
    loop {
        let i = next.fetch_add(1, Relaxed);
        let Some(body) = requests.get(i) else {
            return Ok(out);
        };
        for attempt in 0.. {
            let req = hyper::Request::post(uri.clone())
                .header("content-type", "application/x-protobuf")
                .body(Full::new(body.clone()))?;
            let t0 = Instant::now();
            let resp = client.request(req).await?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await?.to_bytes();
            let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
            if status.is_success() {
                let r = ExportTraceServiceResponse::decode(bytes)?;
                if let Some(p) = r.partial_success
                    && p.rejected_spans > 0
                {
                    bail!("{} spans rejected: {}", p.rejected_spans, p.error_message);
                }
                out.latencies_us.push(us);
                break;
            }
            if (status == 429 || status == 503) && attempt < MAX_ATTEMPTS {
                out.retries += 1;
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
            bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
        }
    }
}

async fn grpc_worker(
    addr: std::net::SocketAddr,
    requests: &[Bytes],
    next: &AtomicUsize,
) -> anyhow::Result<LoadResult> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    let mut out = LoadResult::default();
    loop {
        let i = next.fetch_add(1, Relaxed);
        let Some(body) = requests.get(i) else {
            return Ok(out);
        };
        for attempt in 0.. {
            grpc.ready().await?;
            let t0 = Instant::now();
            let r = grpc
                .unary(tonic::Request::new(body.clone()), path.clone(), RawCodec)
                .await;
            let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
            match r {
                Ok(resp) => {
                    if let Some(p) = resp.into_inner().partial_success
                        && p.rejected_spans > 0
                    {
                        bail!("{} spans rejected: {}", p.rejected_spans, p.error_message);
                    }
                    out.latencies_us.push(us);
                    break;
                }
                Err(s)
                    if matches!(
                        s.code(),
                        tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                    ) && attempt < MAX_ATTEMPTS =>
                {
                    out.retries += 1;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(s) => bail!("gRPC {:?}: {}", s.code(), s.message()),
            }
        }
    }
}

/// Sends already-encoded request bytes as they are; decodes the OTLP response.
#[derive(Clone, Copy)]
struct RawCodec;

struct RawEncoder;
struct ResponseDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportTraceServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}
