//! The one ingest path both transports call: screen → normalise → join log
//! content → validate and price → one call, one cost → queue → durable.
//!
//! Transports only decode, call [`Ingest::export_traces`] /
//! [`Ingest::export_logs`] and encode the answer; limits, partial success and
//! metrics live here once.
//!
//! Invariants: `Ok` means every accepted span is inserted or spooled (the
//! OTLP acknowledgement); rejected spans are counted and described in the
//! outcome, never silently dropped; nothing here panics on any input; the
//! caller's authenticated tenant ([`Caller::key_tenant`]) always wins over
//! what telemetry claims and scopes the log join.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use schemas::ingest_keys::{IngestKeys, KeyMatch};
use schemas::pricing::PriceTable;
use schemas::redact::TenantRedactors;
use schemas::{CanonicalSpan, NormalizeContext};
use store::rows::{EvaluationRow, Retention, SpanRow};
use tokio::sync::Notify;

use crate::calls::RecentCalls;
use crate::config::CollectorConfig;
use crate::error::IngestError;
use crate::join::{JoinLimits, Joiner, key_of, needs_content};
use crate::limits;
use crate::metrics::Metrics;
use crate::pipeline::PipelineHandle;

/// Who is exporting. Today nobody is authenticated (`key_tenant: None`);
/// ingest keys (issue 9) will set the key's tenant here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub key_tenant: Option<String>,
}

impl Caller {
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// The scope log content is joined within.
    fn join_scope(&self) -> &str {
        self.key_tenant.as_deref().unwrap_or("")
    }
}

/// The OTLP answer to an accepted export: spans refused inside it, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub rejected: u64,
    pub message: String,
}

impl Outcome {
    fn rejected_i64(&self) -> i64 {
        i64::try_from(self.rejected).unwrap_or(i64::MAX)
    }

    /// The trace export reply, with `partial_success` when anything was refused.
    pub fn traces_reply(self) -> ExportTraceServiceResponse {
        ExportTraceServiceResponse {
            partial_success: (self.rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: self.rejected_i64(),
                error_message: self.message,
            }),
        }
    }

    /// The logs export reply, with `partial_success` when anything was refused.
    pub fn logs_reply(self) -> ExportLogsServiceResponse {
        ExportLogsServiceResponse {
            partial_success: (self.rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: self.rejected_i64(),
                error_message: self.message,
            }),
        }
    }
}

pub struct Ingest {
    default_tenant: String,
    retention: Retention,
    tenant_retention: HashMap<String, Retention>,
    keys: IngestKeys,
    redactors: TenantRedactors,
    max_attribute_bytes: usize,
    max_spans: usize,
    join_wait: Duration,
    prices: Arc<PriceTable>,
    joiner: Joiner,
    calls: RecentCalls,
    pipeline: PipelineHandle,
    metrics: Arc<Metrics>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Ingest {
    pub fn new(
        cfg: &CollectorConfig,
        prices: Arc<PriceTable>,
        pipeline: PipelineHandle,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        Ok(Self {
            default_tenant: cfg.default_tenant.clone(),
            retention: cfg.retention(),
            tenant_retention: cfg.tenant_retention(),
            keys: cfg.ingest_keys()?,
            redactors: cfg.redactors()?,
            max_attribute_bytes: cfg.max_attribute_bytes,
            max_spans: cfg.max_spans_per_request,
            join_wait: Duration::from_millis(cfg.join_wait_ms),
            prices,
            joiner: Joiner::new(JoinLimits {
                max_waiting_spans: cfg.join_max_waiting_spans,
                max_parked_bytes: cfg.join_max_parked_bytes,
                parked_ttl: Duration::from_millis(cfg.join_parked_ttl_ms),
            }),
            calls: RecentCalls::new(cfg.dedupe_memory),
            pipeline,
            metrics,
        })
    }

    /// Who is calling, from the key the transport found (header or gRPC
    /// metadata). With keys configured, no key or an unknown one is refused.
    pub fn caller(&self, presented: Option<&str>) -> Result<Caller, IngestError> {
        if !self.keys.enabled() {
            return Ok(Caller::anonymous());
        }
        let key = presented.map(schemas::ingest_keys::from_authorization);
        match key.and_then(|k| self.keys.lookup(k)) {
            Some(KeyMatch::Tenant(tenant)) => Ok(Caller {
                key_tenant: Some(tenant.to_string()),
            }),
            Some(KeyMatch::Forwarder) => Ok(Caller::anonymous()),
            None => {
                let e = IngestError::Unauthenticated;
                self.count_refusal(&e);
                Err(e)
            }
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Render `/metrics`, refreshing the gauges this module owns.
    pub fn render_metrics(&self) -> String {
        self.metrics
            .join_parked_bytes
            .store(self.joiner.parked_bytes() as u64, Relaxed);
        self.metrics
            .join_waiting_spans
            .store(self.joiner.waiting_spans() as u64, Relaxed);
        self.metrics.render()
    }

    /// `None` when ready to accept exports, else why not.
    pub fn not_ready(&self) -> Option<&'static str> {
        self.pipeline.status.not_ready()
    }

    /// Count a refusal made by a transport before calling in (bad body...).
    pub fn count_refusal(&self, e: &IngestError) {
        if e.answer().retryable {
            Metrics::add(&self.metrics.requests_refused, 1);
        } else {
            Metrics::add(&self.metrics.requests_invalid, 1);
        }
    }

    /// One trace export. `Ok` is the OTLP acknowledgement.
    pub async fn export_traces(
        &self,
        mut req: ExportTraceServiceRequest,
        caller: &Caller,
    ) -> Result<Outcome, IngestError> {
        let total = schemas::span_count(&req);
        Metrics::add(&self.metrics.spans_received, total as u64);
        if total > self.max_spans {
            Metrics::add(&self.metrics.spans_rejected, total as u64);
            let e = IngestError::TooManySpans {
                count: total,
                limit: self.max_spans,
            };
            self.count_refusal(&e);
            return Err(e);
        }
        let screened = limits::screen_traces(&mut req, self.max_attribute_bytes);
        Metrics::add(&self.metrics.spans_rejected, screened.rejected);
        let ctx = NormalizeContext {
            key_tenant: caller.key_tenant.clone(),
            default_tenant: self.default_tenant.clone(),
        };
        let mut spans = schemas::normalize_traces(req, &ctx);
        let mut cut_spans = 0u64;
        for (span, cut) in spans.iter_mut().zip(&screened.truncated) {
            if *cut > 0 {
                span.truncated = span.truncated.saturating_add(*cut);
                cut_spans += 1;
                Metrics::add(&self.metrics.values_truncated, u64::from(*cut));
            }
        }
        Metrics::add(&self.metrics.spans_truncated, cut_spans);

        self.join_content(&mut spans, caller).await;
        schemas::finish_batch(&mut spans, &self.prices);
        let mut redacted = 0u64;
        for span in spans.iter_mut() {
            self.redactors.redact_span(span);
            redacted += u64::from(span.redacted);
        }
        Metrics::add(&self.metrics.spans_redacted, redacted);
        let claims = self.calls.claim(&mut spans);

        let accepted = spans.len() as u64;
        let (rows, evaluations) = self.rows(spans);
        match self.pipeline.submit(rows, evaluations).await {
            Ok(()) => {
                Metrics::add(&self.metrics.spans_accepted, accepted);
                Ok(Outcome {
                    rejected: screened.rejected,
                    message: screened.message(),
                })
            }
            Err(e) => {
                self.calls.release(&claims);
                Metrics::add(&self.metrics.spans_rejected, accepted);
                self.count_refusal(&e);
                if let IngestError::Internal(detail) = &e {
                    tracing::error!(error = %detail, "trace export failed");
                }
                Err(e)
            }
        }
    }

    /// One logs export: content for spans, joined by (trace id, span id).
    pub async fn export_logs(
        &self,
        mut req: ExportLogsServiceRequest,
        caller: &Caller,
    ) -> Result<Outcome, IngestError> {
        let records: usize = req
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        Metrics::add(&self.metrics.log_records_received, records as u64);
        let cut = limits::screen_logs(&mut req, self.max_attribute_bytes);
        Metrics::add(&self.metrics.values_truncated, u64::from(cut));
        let patches = schemas::content_from_logs(&req);
        let offered = self
            .joiner
            .offer(caller.join_scope(), patches, Instant::now());
        Metrics::add(&self.metrics.content_joined, offered.delivered);
        Metrics::add(&self.metrics.content_evicted, offered.evicted);
        Ok(Outcome::default())
    }

    /// Apply content that arrived first; let content-less model calls wait a
    /// moment for log records still on their way.
    async fn join_content(&self, spans: &mut [CanonicalSpan], caller: &Caller) {
        let scope = caller.join_scope();
        let applied = self.joiner.apply_parked(scope, spans);
        Metrics::add(&self.metrics.content_joined, applied);
        if self.join_wait.is_zero() {
            return;
        }
        let wanted: Vec<_> = spans
            .iter()
            .filter(|s| needs_content(s))
            .map(|s| key_of(scope, s))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let notify = Arc::new(Notify::new());
        let keys = self.joiner.register(wanted, &notify);
        if keys.is_empty() {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.join_wait;
        while !self.joiner.all_delivered(&keys) {
            if tokio::time::timeout_at(deadline, notify.notified())
                .await
                .is_err()
            {
                break;
            }
        }
        let mut delivered = self.joiner.take(&keys);
        if delivered.is_empty() {
            return;
        }
        for span in spans.iter_mut() {
            if let Some(patches) = delivered.remove(&key_of(scope, span)) {
                for p in &patches {
                    p.apply(span);
                }
            }
        }
    }

    fn rows(&self, spans: Vec<CanonicalSpan>) -> (Vec<SpanRow>, Vec<EvaluationRow>) {
        let at = now_ms();
        let retention = |s: &CanonicalSpan| {
            self.tenant_retention
                .get(&s.tenant_id)
                .copied()
                .unwrap_or(self.retention)
        };
        let evaluations = spans
            .iter()
            .flat_map(|s| EvaluationRow::from_canonical(s, retention(s)))
            .collect();
        let rows = spans
            .into_iter()
            .map(|s| {
                let r = retention(&s);
                SpanRow::from_owned(s, r, at)
            })
            .collect();
        (rows, evaluations)
    }
}
