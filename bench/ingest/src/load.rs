//! Sends pre-encoded export requests at fixed concurrency over OTLP/HTTP
//! (protobuf) or OTLP/gRPC, each worker taking the next request; retryable
//! answers (429/503, UNAVAILABLE/RESOURCE_EXHAUSTED) are retried after a
//! short pause and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

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

/// OTLP/gRPC over hyper's HTTP/2 client, one connection per worker: the
/// requests are already gRPC-framed, so they are sent without a copy (a
/// tonic client copies every message into its encode buffer, which cost the
/// bench ~0.6 µs per span under `perf`; it is the client's work, not the
/// collector's).
async fn grpc_worker(
    addr: std::net::SocketAddr,
    framed: &[Bytes],
    next: &AtomicUsize,
) -> anyhow::Result<LoadResult> {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .pool_max_idle_per_host(1)
        .build_http::<Full<Bytes>>();
    let uri: hyper::Uri = format!(
        "http://{addr}{}",
        collector::grpc::export_path::<collector::grpc::Traces>()
    )
    .parse()?;
    let mut out = LoadResult::default();
    loop {
        let i = next.fetch_add(1, Relaxed);
        let Some(body) = framed.get(i) else {
            return Ok(out);
        };
        for attempt in 0.. {
            let req = hyper::Request::post(uri.clone())
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(Full::new(body.clone()))?;
            let t0 = Instant::now();
            let resp = client.request(req).await?;
            let (parts, body) = resp.into_parts();
            let collected = body.collect().await?;
            let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
            // grpc-status comes in the trailers, or in the headers of a
            // trailers-only answer.
            let trailers = collected.trailers().cloned().unwrap_or_default();
            let field = |name: &str| {
                trailers
                    .get(name)
                    .or_else(|| parts.headers.get(name))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let code = field("grpc-status").and_then(|c| c.parse::<i32>().ok());
            let message = collected.to_bytes();
            match code {
                Some(0) => {
                    // One uncompressed message: flag 0, then its length.
                    let (prefix, body) = message
                        .split_at_checked(crate::spans::GRPC_PREFIX)
                        .context("gRPC answer shorter than its prefix")?;
                    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
                    if prefix[0] != 0 || usize::try_from(len)? != body.len() {
                        bail!("gRPC answer is not one uncompressed message: {prefix:?}");
                    }
                    let r = ExportTraceServiceResponse::decode(body)?;
                    if let Some(p) = r.partial_success
                        && p.rejected_spans > 0
                    {
                        bail!("{} spans rejected: {}", p.rejected_spans, p.error_message);
                    }
                    out.latencies_us.push(us);
                    break;
                }
                // UNAVAILABLE, RESOURCE_EXHAUSTED
                Some(14 | 8) if attempt < MAX_ATTEMPTS => {
                    out.retries += 1;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                _ => bail!(
                    "gRPC HTTP {}, status {code:?}: {}",
                    parts.status,
                    field("grpc-message").unwrap_or_default()
                ),
            }
        }
    }
}
