//! Pure span model: turns OTLP spans of any GenAI convention into one canonical
//! row, validates declared JSON outputs, and prices calls. No IO lives here.
//!
//! The collector's pipeline per export, in order:
//! 1. [`normalize_traces`] — one [`CanonicalSpan`] per OTLP span;
//! 2. [`apply_log_records`] / [`ContentPatch::apply`] — content sent as log records;
//! 3. [`validate::validate_batch`] — `json_schema` evaluations for declared JSON outputs;
//! 4. [`dedupe::mark_duplicates`] — one call, one cost;
//! 5. [`pricing::PriceTable::price_spans`] — cost, price status and price version.
//!
//! [`process_batch`] runs all five.

pub mod attrs;
pub mod civil;
pub mod convention;
pub mod dedupe;
pub mod errors;
pub mod events;
pub mod ingest_keys;
pub mod keys;
pub mod logs;
pub mod messages;
pub mod normalize;
pub mod otlp_json;
pub mod preview;
pub mod pricing;
pub mod redact;
pub mod span;
pub mod text_scan;
pub mod validate;

pub use logs::{ContentPatch, apply_log_records, apply_patches, content_from_logs};
pub use normalize::{NormalizeContext, normalize_traces, resolve_tenant, span_count};
pub use span::*;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// The whole pipeline for one export: normalise, join log content, validate declared
/// JSON outputs, mark duplicate calls, price. Log records that match no span of this
/// export are dropped here; a collector that receives logs separately should use
/// [`content_from_logs`] and hold the patches instead.
pub fn process_batch(
    traces: ExportTraceServiceRequest,
    logs: Option<&ExportLogsServiceRequest>,
    ctx: &NormalizeContext,
    prices: &pricing::PriceTable,
) -> Vec<CanonicalSpan> {
    let mut spans = normalize_traces(traces, ctx);
    if let Some(logs) = logs {
        apply_log_records(&mut spans, logs);
    }
    finish_batch(&mut spans, prices);
    spans
}

/// Steps 3–5 of the pipeline, for spans whose content is complete.
pub fn finish_batch(spans: &mut [CanonicalSpan], prices: &pricing::PriceTable) {
    validate::validate_batch(spans);
    dedupe::mark_duplicates(spans);
    prices.price_spans(spans);
}
