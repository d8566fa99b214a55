//! The query layer: what the dashboard asks the store, behind a trait.
//!
//! Invariants:
//! - Every value from a request reaches SQL as a bound `{name:Type}`
//!   parameter, never spliced into the text ([`clickhouse_impl`]).
//! - Tenant scoping is applied here, on every query, not in templates: a
//!   [`Scope`] travels with each call.
//! - List and chart queries read the rollups (`usage_hourly`,
//!   `latency_hourly`, `validation_hourly`) or narrow span columns; only
//!   [`Queries::span_detail`] reads bodies, for one span.
//! - Rows come back raw (money as stored mantissas); shaping into views is the
//!   pure code in `report`, testable without a store.

pub mod clickhouse_impl;

use std::future::Future;
use std::pin::Pin;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::civil::Day;

pub use clickhouse_impl::ClickHouseQueries;

/// A boxed future, so the trait stays object-safe (`Arc<dyn Queries>`).
pub type QueryFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, QueryError>> + Send + 'a>>;

/// Failures of the query layer, closed here.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("query timed out")]
    Timeout,
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("query failed: {0}")]
    Failed(String),
}

/// Which tenants a caller may see. Enforced in every query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// `None`: every tenant.
    pub tenants: Option<Vec<String>>,
}

impl Scope {
    pub fn all() -> Self {
        Self { tenants: None }
    }

    pub fn allows(&self, tenant: &str) -> bool {
        self.tenants
            .as_ref()
            .is_none_or(|t| t.iter().any(|x| x == tenant))
    }
}

/// Half-open range of UTC days `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub from: Day,
    pub to: Day,
}

impl DayRange {
    pub fn days(&self) -> impl Iterator<Item = Day> + use<> {
        let (a, b) = (self.from.0, self.to.0);
        (a..b).map(Day)
    }
}

/// Usage rollup rows for a day range, optionally one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageQuery {
    pub days: DayRange,
    pub tenant: Option<String>,
}

/// One day × tenant × provider × model × feature × price status × currency
/// of `usage_hourly`. Money is the `Decimal(38, 12)` mantissa.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct UsageRow {
    pub day: u16,
    pub tenant_id: String,
    pub provider: String,
    /// The response model when known (the version actually billed), else the request model.
    pub model: String,
    pub feature: String,
    pub price_status: String,
    pub currency: String,
    pub spans: u64,
    pub calls: u64,
    pub errors: u64,
    pub calls_missing_usage: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_input: i128,
    pub cost_output: i128,
    pub cost_cache_read: i128,
    pub cost_cache_write: i128,
    pub cost_total: i128,
}

/// Latency quantiles (p50, p90, p95, p99) of one day, from the t-digest states.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct LatencyRow {
    pub day: u16,
    pub calls: u64,
    pub duration_ms: Vec<f64>,
    pub ttft_ms: Vec<f64>,
}

/// Validation outcomes grouped by time bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationQuery {
    pub from_ns: i64,
    pub to_ns: i64,
    /// Bucket width in seconds (3600 or a multiple).
    pub bucket_secs: u32,
    pub tenant: Option<String>,
    pub model: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ValidationRow {
    /// Bucket start, Unix seconds.
    pub bucket: u32,
    pub tenant_id: String,
    pub request_model: String,
    pub response_model: String,
    pub name: String,
    pub total: u64,
    pub passed: u64,
    pub failed: u64,
}

/// The most frequent failure explanations in a window.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ReasonRow {
    pub name: String,
    pub explanation: String,
    pub failures: u64,
    pub last_seen_ns: i64,
}

/// Values offered in the filter drop-downs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FilterOptions {
    pub tenants: Vec<String>,
    pub services: Vec<String>,
    pub models: Vec<String>,
    pub validations: Vec<String>,
}

/// How the traces list is ordered. Each order has a total keyset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    #[default]
    Newest,
    Oldest,
    Slowest,
    Costliest,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        Some(match s {
            "newest" => Sort::Newest,
            "oldest" => Sort::Oldest,
            "slowest" => Sort::Slowest,
            "costliest" => Sort::Costliest,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Newest => "newest",
            Sort::Oldest => "oldest",
            Sort::Slowest => "slowest",
            Sort::Costliest => "costliest",
        }
    }
}

/// Where the next page starts: the sort value and the (start, trace, span)
/// tie-breakers of the last row shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Sort value: duration ns, cost mantissa, or start ns (for time sorts).
    pub value: i64,
    pub start_ns: i64,
    pub trace_id: String,
    pub span_id: String,
}

impl Cursor {
    /// Opaque to users, but plain: `value.start.trace.span`.
    pub fn encode(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.value, self.start_ns, self.trace_id, self.span_id
        )
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let mut it = s.split('.');
        let value = it.next()?.parse().ok()?;
        let start_ns = it.next()?.parse().ok()?;
        let trace_id = it.next()?.to_string();
        let span_id = it.next()?.to_string();
        let hex = |x: &str| x.len() <= 64 && x.bytes().all(|b| b.is_ascii_hexdigit());
        (it.next().is_none() && hex(&trace_id) && hex(&span_id)).then_some(Cursor {
            value,
            start_ns,
            trace_id,
            span_id,
        })
    }
}

/// Filters of the traces list; `None` / empty means "any".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallFilter {
    pub tenant: Option<String>,
    pub service: Option<String>,
    pub model: Option<String>,
    /// `ok` | `error` | `unset`
    pub status: Option<String>,
    /// `pass` | `fail` | `none`
    pub validation: Option<String>,
    pub from_ns: i64,
    pub to_ns: i64,
    /// Case-insensitive text in the prompt or completion previews.
    pub text: Option<String>,
    pub sort: Sort,
    pub cursor: Option<Cursor>,
    pub limit: u32,
}

/// One LLM call on the traces list (narrow columns, previews only).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct CallRow {
    pub start_ns: i64,
    pub trace_id: String,
    pub span_id: String,
    pub tenant_id: String,
    pub service_name: String,
    pub name: String,
    pub provider: String,
    pub request_model: String,
    pub response_model: String,
    pub status_code: String,
    pub duration_ns: u64,
    pub ttft_ns: Option<u64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cost_total: i64,
    pub currency: String,
    pub price_status: String,
    pub counted: bool,
    pub validation: String,
    pub input_preview: String,
    pub output_preview: String,
}

/// One span of a trace, without bodies.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct SpanSummary {
    pub start_ns: i64,
    pub end_ns: i64,
    pub tenant_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: String,
    pub service_name: String,
    pub status_code: String,
    pub status_message: String,
    pub llm_call: bool,
    pub operation: String,
    pub provider: String,
    pub request_model: String,
    pub response_model: String,
    pub duration_ns: u64,
    pub ttft_ns: Option<u64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub cost_total: i64,
    pub currency: String,
    pub price_status: String,
    pub counted: bool,
    pub validation: String,
    pub tool_name: String,
    pub finish_reasons: Vec<String>,
    pub error_type: String,
}

/// Everything about one span, bodies included.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct SpanBodies {
    pub response_id: String,
    pub http_status: Option<u16>,
    pub streaming: Option<bool>,
    pub cost_input: i64,
    pub cost_output: i64,
    pub cost_cache_read: i64,
    pub cost_cache_write: i64,
    pub price_version: String,
    pub request_params: Vec<(String, String)>,
    pub tool_call_id: String,
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
    pub resource_attributes: Vec<(String, String)>,
    pub events: String,
    pub truncated: u32,
    pub redacted: bool,
}

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct EvaluationOut {
    pub name: String,
    pub label: String,
    pub outcome: String,
    pub score: Option<f64>,
    pub explanation: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanDetail {
    pub summary: SpanSummary,
    pub bodies: SpanBodies,
    pub evaluations: Vec<EvaluationOut>,
}

pub use store::rows::AlertEventRow;

/// The alert evaluator's recent activity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertActivity {
    /// Last evaluator heartbeat (any instance), Unix ns; `None` when none in a day.
    pub last_heartbeat_ns: Option<i64>,
    /// Newest first, within the window.
    pub events: Vec<AlertEventRow>,
}

/// What the dashboard reads. One implementation talks to ClickHouse; tests
/// of the pure view code need none.
pub trait Queries: Send + Sync {
    fn usage_by_day(&self, scope: &Scope, q: UsageQuery) -> QueryFuture<'_, Vec<UsageRow>>;
    fn latency_by_day(&self, scope: &Scope, q: UsageQuery) -> QueryFuture<'_, Vec<LatencyRow>>;
    fn validation(&self, scope: &Scope, q: ValidationQuery) -> QueryFuture<'_, Vec<ValidationRow>>;
    fn failure_reasons(
        &self,
        scope: &Scope,
        q: ValidationQuery,
        limit: u32,
    ) -> QueryFuture<'_, Vec<ReasonRow>>;
    fn filter_options(&self, scope: &Scope, since_ns: i64) -> QueryFuture<'_, FilterOptions>;
    fn list_calls(&self, scope: &Scope, f: CallFilter) -> QueryFuture<'_, Vec<CallRow>>;
    /// Every span of a trace (no bodies); `None` when the trace is unknown or out of scope.
    fn trace_spans(
        &self,
        scope: &Scope,
        trace_id: String,
    ) -> QueryFuture<'_, Option<Vec<SpanSummary>>>;
    fn span_detail(
        &self,
        scope: &Scope,
        trace_id: String,
        span_id: String,
    ) -> QueryFuture<'_, Option<SpanDetail>>;
    /// Alert events since `since_ns` (newest first) and the evaluator's heartbeat.
    fn alert_activity(
        &self,
        scope: &Scope,
        since_ns: i64,
        limit: u32,
    ) -> QueryFuture<'_, AlertActivity>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = Cursor {
            value: -5,
            start_ns: 1_700_000_000_000_000_000,
            trace_id: "ab".repeat(16),
            span_id: "cd".repeat(8),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("1.2.zz.aa"), None);
        assert_eq!(Cursor::decode("1.2.ab"), None);
        assert_eq!(Cursor::decode("1.2.ab.cd.ef"), None);
        assert_eq!(Cursor::decode("x.2.ab.cd"), None);
    }

    #[test]
    fn scope_allows_listed_tenants_only() {
        assert!(Scope::all().allows("x"));
        let s = Scope {
            tenants: Some(vec!["a".into()]),
        };
        assert!(s.allows("a") && !s.allows("b"));
    }
}
