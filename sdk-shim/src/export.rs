//! Span export: a bounded queue between the proxy and one worker that builds the
//! spans and sends them with `opentelemetry-otlp`, plus the counters `/metrics` shows.
//!
//! Loss policy: the proxy never waits for export. A finished call is offered to
//! the queue with `try_send`; when the queue holds `queue_capacity` calls or
//! `max_queued_bytes` of captured content, the span is dropped and counted
//! (`loupe_shim_spans_dropped_total`). A failed export is counted and not retried
//! beyond what the exporter itself does. On shutdown the worker drains the queue,
//! exports what it holds and shuts the exporter down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry_otlp::WithHttpConfig;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanExporter as _;
use tokio::sync::{mpsc, oneshot};

use crate::config::{OtlpProtocol, ShimConfig};
use crate::error::ShimError;
use crate::record::Finished;
use crate::span;

/// Spans per export request at most.
const MAX_BATCH: usize = 512;

/// Counters for `/metrics` (Prometheus text format).
#[derive(Debug, Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub passthrough: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub proxy_errors: AtomicU64,
    pub client_cancelled: AtomicU64,
    pub spans_queued: AtomicU64,
    pub spans_dropped: AtomicU64,
    pub spans_exported: AtomicU64,
    pub spans_export_failed: AtomicU64,
    queued_bytes: AtomicUsize,
}

impl Metrics {
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &AtomicU64); 9] = [
            (
                "loupe_shim_requests_total",
                "Captured calls received.",
                &self.requests,
            ),
            (
                "loupe_shim_passthrough_requests_total",
                "Requests passed through without capture.",
                &self.passthrough,
            ),
            (
                "loupe_shim_upstream_errors_total",
                "Captured calls the upstream answered with 4xx/5xx.",
                &self.upstream_errors,
            ),
            (
                "loupe_shim_proxy_errors_total",
                "Calls the shim answered itself with an error (400/413/502/504).",
                &self.proxy_errors,
            ),
            (
                "loupe_shim_client_cancelled_total",
                "Captured calls whose client disconnected mid-response.",
                &self.client_cancelled,
            ),
            (
                "loupe_shim_spans_queued_total",
                "Spans accepted by the export queue.",
                &self.spans_queued,
            ),
            (
                "loupe_shim_spans_dropped_total",
                "Spans dropped because the export queue was full.",
                &self.spans_dropped,
            ),
            (
                "loupe_shim_spans_exported_total",
                "Spans the collector acknowledged.",
                &self.spans_exported,
            ),
            (
                "loupe_shim_spans_export_failed_total",
                "Spans whose export failed.",
                &self.spans_export_failed,
            ),
        ];
        let mut out = String::new();
        for (name, help, v) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

/// The proxy's side of the queue.
#[derive(Debug, Clone)]
pub struct ExportQueue {
    tx: mpsc::Sender<Finished>,
    metrics: Arc<Metrics>,
    max_bytes: usize,
}

impl ExportQueue {
    /// Offer a finished call; never waits.
    pub fn submit(&self, f: Finished) {
        let w = f.weight();
        let m = &self.metrics;
        if m.queued_bytes.fetch_add(w, Ordering::Relaxed) + w > self.max_bytes {
            m.queued_bytes.fetch_sub(w, Ordering::Relaxed);
            m.spans_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(f) {
            Ok(()) => {
                m.spans_queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                m.queued_bytes.fetch_sub(w, Ordering::Relaxed);
                m.spans_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

/// The worker's side: receives finished calls, exports spans.
pub struct ExportWorker {
    rx: mpsc::Receiver<Finished>,
    exporter: opentelemetry_otlp::SpanExporter,
    metrics: Arc<Metrics>,
}

/// Build the queue, its worker and the OTLP exporter (needs a Tokio runtime).
pub fn channel(
    cfg: &ShimConfig,
    metrics: Arc<Metrics>,
) -> Result<(ExportQueue, ExportWorker), ShimError> {
    let timeout = Duration::from_millis(cfg.otlp_timeout_ms.max(1));
    let built = match cfg.otlp_protocol {
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(traces_url(&cfg.otlp_endpoint))
            .with_timeout(timeout)
            .with_headers(
                cfg.otlp_headers
                    .clone()
                    .into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
            )
            .build(),
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(cfg.otlp_endpoint.clone())
            .with_timeout(timeout)
            .build(),
    };
    let mut exporter = built.map_err(|e| ShimError::Exporter(e.to_string()))?;
    exporter.set_resource(
        &Resource::builder_empty()
            .with_service_name(cfg.service_name.clone())
            .build(),
    );
    let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
    Ok((
        ExportQueue {
            tx,
            metrics: metrics.clone(),
            max_bytes: cfg.max_queued_bytes,
        },
        ExportWorker {
            rx,
            exporter,
            metrics,
        },
    ))
}

/// OTLP/HTTP base URL → its traces endpoint (a URL that already names a path is kept).
fn traces_url(base: &str) -> String {
    let trimmed = base.trim_end_matches('/');
    let has_path = trimmed
        .parse::<http::Uri>()
        .ok()
        .is_some_and(|u| !matches!(u.path(), "" | "/"));
    if has_path {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

impl ExportWorker {
    /// Export until `stop` fires (or every sender is gone), then drain and shut down.
    pub async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut buf: Vec<Finished> = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => break,
                n = self.rx.recv_many(&mut buf, MAX_BATCH) => {
                    if n == 0 {
                        break;
                    }
                    self.export(&mut buf).await;
                }
            }
        }
        self.rx.close();
        while let Some(f) = self.rx.recv().await {
            buf.push(f);
            if buf.len() >= MAX_BATCH {
                self.export(&mut buf).await;
            }
        }
        self.export(&mut buf).await;
        if let Err(e) = self.exporter.shutdown() {
            tracing::debug!(error = %e, "shim exporter shutdown");
        }
    }

    async fn export(&mut self, buf: &mut Vec<Finished>) {
        if buf.is_empty() {
            return;
        }
        let weight: usize = buf.iter().map(Finished::weight).sum();
        self.metrics
            .queued_bytes
            .fetch_sub(weight, Ordering::Relaxed);
        let batch: Vec<Finished> = std::mem::take(buf);
        // Building spans (JSON bodies, validation, estimation) is CPU work: keep it
        // off the runtime's workers so proxied calls never queue behind it.
        let spans = match tokio::task::spawn_blocking(move || {
            batch.into_iter().map(span::build).collect::<Vec<_>>()
        })
        .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "shim span building failed");
                return;
            }
        };
        let n = spans.len() as u64;
        match self.exporter.export(spans).await {
            Ok(()) => {
                self.metrics.spans_exported.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.metrics
                    .spans_export_failed
                    .fetch_add(n, Ordering::Relaxed);
                tracing::warn!(spans = n, error = %e, "shim span export failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_url_appends_the_signal_path_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn metrics_render_as_prometheus_counters() {
        let m = Metrics::default();
        m.spans_dropped.fetch_add(3, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains(
            "# TYPE loupe_shim_spans_dropped_total counter\nloupe_shim_spans_dropped_total 3\n"
        ));
    }
}
