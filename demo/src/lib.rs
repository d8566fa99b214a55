//! `loupe demo`: generates a realistic GenAI workload ([`workload`]) and sends
//! it to a running collector over OTLP/HTTP ([`send`]), like any instrumented
//! service would. Nothing here writes to the store directly.

pub mod send;
pub mod workload;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;

pub use send::{SendError, Sender};
pub use workload::{Workload, WorkloadConfig};

/// Where to send and how much.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Collector's OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318`.
    pub endpoint: String,
    pub workload: WorkloadConfig,
    pub in_flight: usize,
    /// Ingest key, when the collector requires one.
    pub key: Option<String>,
}

/// What was sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoSummary {
    pub requests: u64,
    pub spans: u64,
    pub elapsed: Duration,
}

/// Generates and sends the whole workload.
pub async fn run(cfg: &DemoConfig) -> Result<DemoSummary, SendError> {
    let sender = Sender::new(&cfg.endpoint, cfg.in_flight, cfg.key.as_deref())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let started = Instant::now();
    let mut summary = DemoSummary {
        requests: 0,
        spans: 0,
        elapsed: Duration::ZERO,
    };
    let mut tasks = JoinSet::new();
    for req in Workload::new(cfg.workload.clone(), now) {
        summary.requests += 1;
        summary.spans += req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len() as u64)
            .sum::<u64>();
        while tasks.len() >= cfg.in_flight.max(1) {
            if let Some(done) = tasks.join_next().await {
                done.map_err(|_| SendError::Busy)??;
            }
        }
        let sender = sender.clone();
        tasks.spawn(async move { sender.send(&req).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|_| SendError::Busy)??;
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}
