//! Row structs: one per table, fields in the order and types of the
//! migrations (a test against the real engine compares them with
//! `DESCRIBE TABLE`). The conversions from the canonical span live here too,
//! so the collector never spells a column.
//!
//! Encodings: `DateTime64(9)` is Unix nanoseconds in an `i64`;
//! `Decimal(18, 12)` is the value × 10¹² in an `i64` ([`decimal_to_i64`]);
//! `Map(K, V)` is a `Vec<(K, V)>`.

use std::sync::Arc;

use clickhouse::Row;
use rust_decimal::Decimal;
use schemas::preview;
use schemas::span::{CanonicalSpan, Evaluation};
use serde::{Deserialize, Serialize};

/// Table names, spelled once.
pub mod tables {
    pub const SPANS: &str = "loupe.spans";
    pub const EVALUATIONS: &str = "loupe.evaluations";
    pub const TRACE_INDEX: &str = "loupe.trace_index";
    pub const USAGE_HOURLY: &str = "loupe.usage_hourly";
    pub const VALIDATION_HOURLY: &str = "loupe.validation_hourly";
    pub const LATENCY_HOURLY: &str = "loupe.latency_hourly";
    pub const ALERT_EVENTS: &str = "loupe.alert_events";
    pub const ALERT_DELIVERIES: &str = "loupe.alert_deliveries";
    pub const ALERT_HEARTBEATS: &str = "loupe.alert_heartbeats";
}

/// Scale of every stored money column.
pub const MONEY_SCALE: u32 = 12;
pub use schemas::preview::PREVIEW_CHARS;

/// Retention applied to a row, in days (from the tenant's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub days: u16,
    pub body_days: u16,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            days: 90,
            body_days: 30,
        }
    }
}

/// `loupe.spans`, field for field.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct SpanRow {
    pub tenant_id: String,
    pub start_time: i64,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub end_time: i64,
    pub duration_ns: u64,
    pub name: String,
    pub kind: String,
    pub service_name: String,
    pub scope_name: String,
    pub scope_version: String,
    pub status_code: String,
    pub status_message: String,
    pub llm_call: bool,
    pub operation: String,
    pub provider: String,
    pub request_model: String,
    pub response_model: String,
    pub response_id: String,
    pub finish_reasons: Vec<String>,
    pub error_type: String,
    pub http_status: Option<u16>,
    pub streaming: Option<bool>,
    pub ttft_ns: Option<u64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    pub counted: bool,
    pub cost_input: i64,
    pub cost_output: i64,
    pub cost_cache_read: i64,
    pub cost_cache_write: i64,
    pub cost_total: i64,
    pub currency: String,
    pub price_status: String,
    pub price_version: String,
    pub request_params: Vec<(String, String)>,
    pub tool_name: String,
    pub tool_call_id: String,
    pub input_preview: String,
    pub output_preview: String,
    pub input_messages: String,
    pub output_messages: String,
    pub tool_definitions: String,
    pub output_schema: String,
    pub output_type: String,
    pub user_id: String,
    pub session_id: String,
    pub feature: String,
    pub source_convention: String,
    pub attributes: Vec<(String, String)>,
    /// Shared by the spans of one resource when built from `normalize_traces`.
    pub resource_attributes: Arc<[(String, String)]>,
    pub events: String,
    pub validation: String,
    pub truncated: u32,
    pub redacted: bool,
    pub retention_days: u16,
    pub body_retention_days: u16,
    pub ingested_at: i64,
}

/// `loupe.evaluations`, field for field.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct EvaluationRow {
    pub tenant_id: String,
    pub time: i64,
    pub trace_id: String,
    pub span_id: String,
    pub name: String,
    pub label: String,
    pub outcome: String,
    pub score: Option<f64>,
    pub explanation: String,
    pub source: String,
    pub provider: String,
    pub request_model: String,
    pub response_model: String,
    pub feature: String,
    pub service_name: String,
    pub retention_days: u16,
}

/// `loupe.alert_events`, field for field: one notification the alert
/// evaluator decided on (written by `alerts`, read by the dashboard).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct AlertEventRow {
    /// Unix milliseconds.
    pub time: i64,
    pub rule: String,
    pub kind: String,
    pub tenant_id: String,
    pub subject: String,
    /// `firing` | `renotify` | `resolved`
    pub event: String,
    pub severity: String,
    pub summary: String,
    pub value: f64,
    pub threshold: f64,
    pub link: String,
    /// Unix seconds.
    pub since: u32,
}

/// Money as the stored `Decimal(18, 12)` mantissa. Values beyond the column's
/// range saturate (a single span costing more than ~9 million is not real
/// data; saturating keeps the row rather than losing it).
pub fn decimal_to_i64(d: Decimal) -> i64 {
    let mut d = d.round_dp(MONEY_SCALE);
    d.rescale(MONEY_SCALE);
    let m = d.mantissa();
    i64::try_from(m).unwrap_or(if m < 0 { i64::MIN } else { i64::MAX })
}

/// The stored mantissa back to money.
pub fn decimal_from_i64(v: i64) -> Decimal {
    Decimal::from_i128_with_scale(i128::from(v), MONEY_SCALE)
}

/// Money from a `Decimal(38, 12)` (rollup sums).
pub fn decimal_from_i128(v: i128) -> Decimal {
    Decimal::try_from_i128_with_scale(v, MONEY_SCALE).unwrap_or(Decimal::MAX)
}

fn nanos(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Pass, fail or other, from an evaluation's label (and score when the
/// label says nothing).
pub fn outcome(e: &Evaluation) -> &'static str {
    match e.label.to_ascii_lowercase().as_str() {
        "pass" | "passed" | "ok" | "valid" | "true" | "success" => "pass",
        "fail" | "failed" | "invalid" | "false" | "error" | "failure" => "fail",
        "" => match e.score {
            Some(s) if s >= 1.0 => "pass",
            Some(s) if s <= 0.0 => "fail",
            _ => "other",
        },
        _ => "other",
    }
}

/// A row's preview: from the span's preview source when ingest took one,
/// else from the stored JSON.
fn preview(source: &str, messages_json: &str, last_user: bool) -> String {
    if !source.is_empty() {
        preview::single_line(source)
    } else if messages_json.is_empty() {
        String::new()
    } else {
        preview::from_json(messages_json, last_user)
    }
}

impl SpanRow {
    /// The row of a span the caller keeps (copies its strings).
    pub fn from_canonical(s: &CanonicalSpan, retention: Retention, ingested_at_ms: i64) -> Self {
        Self::from_owned(s.clone(), retention, ingested_at_ms)
    }

    /// The row of a span, moving its strings (the ingest path).
    pub fn from_owned(s: CanonicalSpan, retention: Retention, ingested_at_ms: i64) -> Self {
        let validation = if s.evaluations.iter().any(|e| outcome(e) == "fail") {
            "fail"
        } else if s.evaluations.iter().any(|e| outcome(e) == "pass") {
            "pass"
        } else {
            ""
        };
        let input_preview = preview(&s.input_preview, &s.input_messages, true);
        let output_preview = preview(&s.output_preview, &s.output_messages, false);
        let events = serde_json::to_string(&s.events).unwrap_or_default();
        Self {
            tenant_id: s.tenant_id,
            start_time: nanos(s.start_time_unix_nano),
            trace_id: s.trace_id,
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            end_time: nanos(s.end_time_unix_nano),
            duration_ns: s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano),
            name: s.name,
            kind: s.kind,
            service_name: s.service_name,
            scope_name: s.scope_name,
            scope_version: s.scope_version,
            status_code: s.status.as_str().to_string(),
            status_message: s.status_message,
            llm_call: s.operation.is_model_call(),
            operation: s.operation.as_str().to_string(),
            provider: s.provider,
            request_model: s.request_model,
            response_model: s.response_model,
            response_id: s.response_id,
            finish_reasons: s.finish_reasons,
            error_type: s.error_type,
            http_status: s.http_status,
            streaming: s.streaming,
            ttft_ns: s.time_to_first_token_ns,
            input_tokens: s.usage.input,
            output_tokens: s.usage.output,
            cache_read_tokens: s.usage.cache_read,
            cache_write_tokens: s.usage.cache_write,
            reasoning_tokens: s.usage.reasoning,
            total_tokens: s.usage.total,
            counted: s.counted,
            cost_input: decimal_to_i64(s.cost.input),
            cost_output: decimal_to_i64(s.cost.output),
            cost_cache_read: decimal_to_i64(s.cost.cache_read),
            cost_cache_write: decimal_to_i64(s.cost.cache_write),
            cost_total: decimal_to_i64(s.cost.total),
            currency: s.cost.currency,
            price_status: s.price_status.as_str().to_string(),
            price_version: s.price_version,
            request_params: s.request_params,
            tool_name: s.tool_name,
            tool_call_id: s.tool_call_id,
            input_preview,
            output_preview,
            input_messages: s.input_messages,
            output_messages: s.output_messages,
            tool_definitions: s.tool_definitions,
            output_schema: s.output_schema,
            output_type: s.output_type,
            user_id: s.user_id,
            session_id: s.session_id,
            feature: s.feature,
            source_convention: s.source_convention,
            attributes: s.attributes,
            resource_attributes: s.resource_attributes,
            events,
            validation: validation.to_string(),
            truncated: s.truncated,
            redacted: s.redacted,
            retention_days: retention.days,
            body_retention_days: retention.body_days,
            ingested_at: ingested_at_ms,
        }
    }
}

impl EvaluationRow {
    /// One row per evaluation of the span.
    pub fn from_canonical(s: &CanonicalSpan, retention: Retention) -> Vec<Self> {
        s.evaluations
            .iter()
            .map(|e| Self {
                tenant_id: s.tenant_id.clone(),
                time: nanos(s.end_time_unix_nano.max(s.start_time_unix_nano)),
                trace_id: s.trace_id.clone(),
                span_id: s.span_id.clone(),
                name: e.name.clone(),
                label: e.label.clone(),
                outcome: outcome(e).to_string(),
                score: e.score,
                explanation: e.explanation.clone(),
                source: e.source.clone(),
                provider: s.provider.clone(),
                request_model: s.request_model.clone(),
                response_model: s.response_model.clone(),
                feature: s.feature.clone(),
                service_name: s.service_name.clone(),
                retention_days: retention.days,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::span::Message;
    use std::str::FromStr;

    #[test]
    fn money_round_trips_at_twelve_decimals() {
        for s in [
            "0",
            "0.000000075",
            "1.5",
            "-2.000000000001",
            "123456.789012345678",
        ] {
            let d = Decimal::from_str(s).unwrap();
            let back = decimal_from_i64(decimal_to_i64(d));
            assert_eq!(back, d.round_dp(MONEY_SCALE), "{s}");
        }
        assert_eq!(decimal_to_i64(Decimal::from(10_000_000)), i64::MAX);
    }

    #[test]
    fn outcome_reads_labels_then_scores() {
        let e = |label: &str, score| Evaluation {
            label: label.into(),
            score,
            ..Default::default()
        };
        assert_eq!(outcome(&e("FAIL", None)), "fail");
        assert_eq!(outcome(&e("pass", Some(0.0))), "pass");
        assert_eq!(outcome(&e("", Some(1.0))), "pass");
        assert_eq!(outcome(&e("", Some(0.0))), "fail");
        assert_eq!(outcome(&e("", Some(0.5))), "other");
        assert_eq!(outcome(&e("relevant", None)), "other");
    }

    #[test]
    fn rows_preview_the_source_else_the_stored_body() {
        let body = serde_json::to_string(&vec![Message {
            role: "user".into(),
            content: "from the body".into(),
            ..Default::default()
        }])
        .unwrap();
        let span = |source: &str| CanonicalSpan {
            input_messages: body.clone(),
            input_preview: source.into(),
            ..Default::default()
        };
        let row = |s| SpanRow::from_owned(s, Retention::default(), 0);
        assert_eq!(
            row(span("from  the\nsource")).input_preview,
            "from the source"
        );
        assert_eq!(row(span("")).input_preview, "from the body");
        assert_eq!(row(CanonicalSpan::default()).input_preview, "");
    }
}
