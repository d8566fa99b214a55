//! [`Queries`] against ClickHouse (server or the embedded engine's endpoint).
//!
//! Invariants:
//! - SQL text is static (`const` or chosen from a closed enum); request values
//!   are bound with `.param()` into `{name:Type}` placeholders.
//! - Every query runs on the store's reader client (`readonly=1`) and under a
//!   client-side timeout.
//! - Every query carries [`SCOPE`], so tenant scoping cannot be forgotten in a
//!   template.
//! - Only [`Queries::span_detail`] selects body columns, for one span.

use std::time::Duration;

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::*;
use store::rows::decimal_from_i64;

/// Tenant scoping clause; bound by [`ClickHouseQueries::query`].
const SCOPE: &str = "({scope_all:UInt8} = 1 OR has({scope:Array(String)}, tenant_id))";

/// The dashboard's reads, on a `readonly=1` client.
#[derive(Clone)]
pub struct ClickHouseQueries {
    client: Client,
    timeout: Duration,
}

impl ClickHouseQueries {
    pub fn new(reader: Client, timeout: Duration) -> Self {
        Self {
            client: reader,
            timeout,
        }
    }

    /// A query with the scope parameters bound. `sql` must contain [`SCOPE`].
    fn query(&self, sql: &str, scope: &Scope) -> clickhouse::query::Query {
        debug_assert!(
            sql.contains(SCOPE),
            "every dashboard query is tenant-scoped"
        );
        let q = self.client.query(sql);
        match &scope.tenants {
            None => q
                .param("scope_all", 1u8)
                .param("scope", Vec::<String>::new()),
            Some(t) => q.param("scope_all", 0u8).param("scope", t),
        }
    }

    async fn all<T>(&self, q: clickhouse::query::Query) -> Result<Vec<T>, QueryError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        match tokio::time::timeout(self.timeout, q.fetch_all::<T>()).await {
            Ok(r) => r.map_err(map_err),
            Err(_) => Err(QueryError::Timeout),
        }
    }
}

fn map_err(e: clickhouse::error::Error) -> QueryError {
    use clickhouse::error::Error as E;
    match e {
        E::Network(_) | E::TimedOut => QueryError::Unavailable(e.to_string()),
        other => {
            let text = other.to_string();
            if text.contains("TIMEOUT_EXCEEDED") {
                QueryError::Timeout
            } else {
                QueryError::Failed(text)
            }
        }
    }
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// `%text%` for LIKE, with the pattern's own metacharacters escaped, so the
/// user's text is matched literally (it is still a bound parameter).
pub fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn secs(ns: i64) -> i64 {
    ns.div_euclid(1_000_000_000)
}

const USAGE_SQL: &str = "
SELECT
    toDate(u.hour) AS day,
    u.tenant_id AS tenant_id,
    u.provider AS provider,
    if(u.response_model = '', u.request_model, u.response_model) AS model,
    u.feature AS feature,
    u.price_status AS price_status,
    u.currency AS currency,
    sum(u.spans) AS spans,
    sum(u.calls) AS calls,
    sum(u.errors) AS errors,
    sum(u.calls_missing_usage) AS calls_missing_usage,
    sum(u.input_tokens) AS input_tokens,
    sum(u.output_tokens) AS output_tokens,
    sum(u.cache_read_tokens) AS cache_read_tokens,
    sum(u.cache_write_tokens) AS cache_write_tokens,
    sum(u.reasoning_tokens) AS reasoning_tokens,
    sum(u.cost_input) AS cost_input,
    sum(u.cost_output) AS cost_output,
    sum(u.cost_cache_read) AS cost_cache_read,
    sum(u.cost_cache_write) AS cost_cache_write,
    sum(u.cost_total) AS cost_total
FROM loupe.usage_hourly AS u
WHERE u.hour >= toDateTime({from_s:Int64}, 'UTC') AND u.hour < toDateTime({to_s:Int64}, 'UTC')
  AND ({scope_all:UInt8} = 1 OR has({scope:Array(String)}, tenant_id))
  AND ({tenant:String} = '' OR u.tenant_id = {tenant:String})
GROUP BY day, tenant_id, provider, model, feature, price_status, currency
ORDER BY day, tenant_id, model, feature, price_status, currency";

const LATENCY_SQL: &str = "
SELECT
    toDate(u.hour) AS day,
    sum(u.calls) AS calls,
    arrayMap(x -> toFloat64(x), quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(u.duration_ms)) AS duration_ms,
    arrayMap(x -> toFloat64(x), quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(u.ttft_ms)) AS ttft_ms
FROM loupe.latency_hourly AS u
WHERE u.hour >= toDateTime({from_s:Int64}, 'UTC') AND u.hour < toDateTime({to_s:Int64}, 'UTC')
  AND ({scope_all:UInt8} = 1 OR has({scope:Array(String)}, tenant_id))
  AND ({tenant:String} = '' OR u.tenant_id = {tenant:String})
GROUP BY day
ORDER BY day";

const VALIDATION_SQL: &str = "
SELECT
    toUInt32(intDiv(toUnixTimestamp(v.hour), {bucket:UInt32}) * {bucket:UInt32}) AS bucket,
    v.tenant_id AS tenant_id,
    v.request_model AS request_model,
    v.response_model AS response_model,
    v.name AS name,
    sum(v.total) AS total,
    sum(v.passed) AS passed,
    sum(v.failed) AS failed
FROM loupe.validation_hourly AS v
WHERE v.hour >= toDateTime({from_s:Int64}, 'UTC') AND v.hour < toDateTime({to_s:Int64}, 'UTC')
  AND ({scope_all:UInt8} = 1 OR has({scope:Array(String)}, tenant_id))
  AND ({tenant:String} = '' OR v.tenant_id = {tenant:String})
  AND ({model:String} = '' OR v.request_model = {model:String} OR v.response_model = {model:String})
  AND ({name:String} = '' OR v.name = {name:String})
GROUP BY bucket, tenant_id, request_model, response_model, name
ORDER BY bucket, tenant_id, request_model, name, response_model";

const REASONS_SQL: &str = "
SELECT
    e.name AS name,
    leftUTF8(e.explanation, 300) AS explanation,
    count() AS failures,
    toUnixTimestamp64Nano(max(e.time)) AS last_seen_ns
FROM loupe.evaluations AS e
WHERE e.time >= fromUnixTimestamp64Nano({from_ns:Int64}, 'UTC')
  AND e.time < fromUnixTimestamp64Nano({to_ns:Int64}, 'UTC')
  AND e.outcome = 'fail'
  AND ({scope_all:UInt8} = 1 OR has({scope:Array(String)}, tenant_id))
  AND ({tenant:String} = '' OR e.tenant_id = {tenant:String})
  AND ({model:String} = '' OR e.request_model = {model:String} OR e.response_model = {model:String})
  AND ({name:String} = '' OR e.name = {name:String})
GROUP BY name, explanation
ORDER BY failures DESC, name, explanation
LIMIT {limit:UInt32}";

#[derive(Row, Deserialize)]
struct OptionsRow {
    tenants: Vec<String>,
    services: Vec<String>,
    request_models: Vec<String>,
    response_models: Vec<String>,
}

const OPTIONS_SQL: &str = "
SELECT
    groupUniqArray(1000)(u.tenant_id) AS tenants,
    groupUniqArray(1000)(u.service_name) AS services,
    groupUniqArray(1000)(u.request_model) AS request_models,
    groupUniqArray(1000)(u.response_model) AS response_models
FROM loupe.usage_hourly AS u
WHERE u.hour >= toDateTime({from_s:Int64}, 'UTC')
  AND ({scope_all:UInt8} = 1 OR has({scope:Array(String)}, tenant_id))";

const VALIDATION_NAMES_SQL: &str = "
SELECT DISTINCT v.name
FROM loupe.validation_hourly AS v
WHERE v.hour >= toDateTime({from_s:Int64}, 'UTC')
  AND ({scope_all:UInt8} = 1 OR has({scope:Array(String)}, tenant_id))
ORDER BY v.name
LIMIT 1000";

const CALL_COLS: &str = "
    toUnixTimestamp64Nano(start_time) AS start_ns, trace_id, span_id, tenant_id, service_name, name,
    provider, request_model, response_model, status_code, duration_ns, ttft_ns, input_tokens,
    output_tokens, cost_total, currency, price_status, counted, validation, input_preview, output_preview";

const CALL_FILTERS: &str = "
WHERE llm_call
  AND start_time >= fromUnixTimestamp64Nano({from_ns:Int64}, 'UTC')
  AND start_time < fromUnixTimestamp64Nano({to_ns:Int64}, 'UTC')
  AND ({scope_all:UInt8} = 1 OR has({scope:Array(String)}, tenant_id))
  AND ({tenant:String} = '' OR tenant_id = {tenant:String})
  AND ({service:String} = '' OR service_name = {service:String})
  AND ({model:String} = '' OR request_model = {model:String} OR response_model = {model:String})
  AND ({status:String} = '' OR status_code = {status:String})
  AND ({validation_any:UInt8} = 1 OR validation = {validation:String})
  AND ({text_like:String} = ''
       OR lowerUTF8(input_preview) LIKE lowerUTF8({text_like:String})
       OR lowerUTF8(output_preview) LIKE lowerUTF8({text_like:String}))";

/// Keyset clause and order per sort: the tuple compared is the ORDER BY.
fn keyset(sort: Sort) -> (&'static str, &'static str) {
    match sort {
        Sort::Newest => (
            "({has_cursor:UInt8} = 0 OR (start_time <= fromUnixTimestamp64Nano({c_start:Int64}, 'UTC')
              AND (start_time, trace_id, span_id) < (fromUnixTimestamp64Nano({c_start:Int64}, 'UTC'), {c_trace:String}, {c_span:String})))",
            "ORDER BY start_time DESC, trace_id DESC, span_id DESC",
        ),
        Sort::Oldest => (
            "({has_cursor:UInt8} = 0 OR (start_time >= fromUnixTimestamp64Nano({c_start:Int64}, 'UTC')
              AND (start_time, trace_id, span_id) > (fromUnixTimestamp64Nano({c_start:Int64}, 'UTC'), {c_trace:String}, {c_span:String})))",
            "ORDER BY start_time ASC, trace_id ASC, span_id ASC",
        ),
        Sort::Slowest => (
            "({has_cursor:UInt8} = 0 OR (duration_ns <= {c_dur:UInt64}
              AND (duration_ns, start_time, trace_id, span_id) < ({c_dur:UInt64}, fromUnixTimestamp64Nano({c_start:Int64}, 'UTC'), {c_trace:String}, {c_span:String})))",
            "ORDER BY duration_ns DESC, start_time DESC, trace_id DESC, span_id DESC",
        ),
        Sort::Costliest => (
            "({has_cursor:UInt8} = 0 OR (cost_total <= {c_cost:Decimal(18, 12)}
              AND (cost_total, start_time, trace_id, span_id) < ({c_cost:Decimal(18, 12)}, fromUnixTimestamp64Nano({c_start:Int64}, 'UTC'), {c_trace:String}, {c_span:String})))",
            "ORDER BY cost_total DESC, start_time DESC, trace_id DESC, span_id DESC",
        ),
    }
}

const SUMMARY_COLS: &str = "
    toUnixTimestamp64Nano(start_time) AS start_ns, toUnixTimestamp64Nano(end_time) AS end_ns,
    tenant_id, span_id, parent_span_id, name, kind, service_name, status_code, status_message,
    llm_call, operation, provider, request_model, response_model, duration_ns, ttft_ns,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
    cost_total, currency, price_status, counted, validation, tool_name, finish_reasons, error_type";

const BODY_COLS: &str = "
    response_id, http_status, streaming, cost_input, cost_output, cost_cache_read, cost_cache_write,
    price_version, request_params, tool_call_id, input_messages, output_messages, tool_definitions,
    output_schema, output_type, user_id, session_id, feature, source_convention, attributes,
    resource_attributes, events, truncated, redacted";

/// Where a trace lives: its tenant and time range, from the trace index.
#[derive(Row, Deserialize)]
struct TraceLoc {
    tenant_id: String,
    from_ns: i64,
    to_ns: i64,
}

const TRACE_LOC_SQL: &str = "
SELECT tenant_id, toUnixTimestamp64Nano(min(start_time)) AS from_ns, toUnixTimestamp64Nano(max(end_time)) AS to_ns
FROM loupe.trace_index
WHERE trace_id = {trace_id:String}
  AND ({scope_all:UInt8} = 1 OR has({scope:Array(String)}, tenant_id))
GROUP BY tenant_id
ORDER BY tenant_id
LIMIT 16";

/// The most spans one trace view loads.
pub const MAX_TRACE_SPANS: u32 = 20_000;

const SPAN_WHERE: &str = "
WHERE tenant_id = {tenant:String}
  AND start_time >= fromUnixTimestamp64Nano({from_ns:Int64}, 'UTC')
  AND start_time <= fromUnixTimestamp64Nano({to_ns:Int64}, 'UTC')
  AND trace_id = {trace_id:String}
  AND ({scope_all:UInt8} = 1 OR has({scope:Array(String)}, tenant_id))";

const EVALS_SQL: &str = "
SELECT name, label, outcome, score, explanation, source
FROM loupe.evaluations
WHERE tenant_id = {tenant:String}
  AND time >= fromUnixTimestamp64Nano({from_ns:Int64}, 'UTC')
  AND trace_id = {trace_id:String} AND span_id = {span_id:String}
  AND ({scope_all:UInt8} = 1 OR has({scope:Array(String)}, tenant_id))
ORDER BY name";

const ALERT_EVENTS_SQL: &str = "
SELECT time, rule, kind, tenant_id, subject, event, severity,
       summary, value, threshold, link, since
FROM loupe.alert_events
WHERE time >= fromUnixTimestamp64Nano({from_ns:Int64}, 'UTC')
  AND ({scope_all:UInt8} = 1 OR has({scope:Array(String)}, tenant_id))
ORDER BY time DESC
LIMIT {limit:UInt32}";

/// Heartbeats carry no tenant data, so this is the one unscoped read.
const HEARTBEAT_SQL: &str = "
SELECT toUnixTimestamp64Nano(max(time)) FROM loupe.alert_heartbeats
WHERE time >= now64(3) - INTERVAL 1 DAY";

impl ClickHouseQueries {
    async fn locate(&self, scope: &Scope, trace_id: &str) -> Result<Vec<TraceLoc>, QueryError> {
        self.all(self.query(TRACE_LOC_SQL, scope).param("trace_id", trace_id))
            .await
    }
}

impl Queries for ClickHouseQueries {
    fn usage_by_day(&self, scope: &Scope, q: UsageQuery) -> QueryFuture<'_, Vec<UsageRow>> {
        let query = self
            .query(USAGE_SQL, scope)
            .param("from_s", secs(q.days.from.start_ns()))
            .param("to_s", secs(q.days.to.start_ns()))
            .param("tenant", opt(&q.tenant));
        Box::pin(self.all(query))
    }

    fn latency_by_day(&self, scope: &Scope, q: UsageQuery) -> QueryFuture<'_, Vec<LatencyRow>> {
        let query = self
            .query(LATENCY_SQL, scope)
            .param("from_s", secs(q.days.from.start_ns()))
            .param("to_s", secs(q.days.to.start_ns()))
            .param("tenant", opt(&q.tenant));
        Box::pin(self.all(query))
    }

    fn validation(&self, scope: &Scope, q: ValidationQuery) -> QueryFuture<'_, Vec<ValidationRow>> {
        let query = self
            .query(VALIDATION_SQL, scope)
            .param("bucket", q.bucket_secs.max(3600))
            .param("from_s", secs(q.from_ns))
            .param("to_s", secs(q.to_ns))
            .param("tenant", opt(&q.tenant))
            .param("model", opt(&q.model))
            .param("name", opt(&q.name));
        Box::pin(self.all(query))
    }

    fn failure_reasons(
        &self,
        scope: &Scope,
        q: ValidationQuery,
        limit: u32,
    ) -> QueryFuture<'_, Vec<ReasonRow>> {
        let query = self
            .query(REASONS_SQL, scope)
            .param("from_ns", q.from_ns)
            .param("to_ns", q.to_ns)
            .param("tenant", opt(&q.tenant))
            .param("model", opt(&q.model))
            .param("name", opt(&q.name))
            .param("limit", limit);
        Box::pin(self.all(query))
    }

    fn filter_options(&self, scope: &Scope, since_ns: i64) -> QueryFuture<'_, FilterOptions> {
        let usage = self
            .query(OPTIONS_SQL, scope)
            .param("from_s", secs(since_ns));
        let names = self
            .query(VALIDATION_NAMES_SQL, scope)
            .param("from_s", secs(since_ns));
        Box::pin(async move {
            let rows: Vec<OptionsRow> = self.all(usage).await?;
            let validations: Vec<String> = self.all(names).await?;
            let mut out = FilterOptions {
                validations,
                ..Default::default()
            };
            for r in rows {
                out.tenants.extend(r.tenants);
                out.services.extend(r.services);
                out.models.extend(r.request_models);
                out.models.extend(r.response_models);
            }
            for v in [&mut out.tenants, &mut out.services, &mut out.models] {
                v.retain(|s| !s.is_empty());
                v.sort();
                v.dedup();
            }
            Ok(out)
        })
    }

    fn list_calls(&self, scope: &Scope, f: CallFilter) -> QueryFuture<'_, Vec<CallRow>> {
        let (clause, order) = keyset(f.sort);
        let sql = format!(
            "SELECT {CALL_COLS}\nFROM loupe.spans{CALL_FILTERS}\n  AND {clause}\n{order}\nLIMIT {{limit:UInt32}}"
        );
        let (validation_any, validation) = match f.validation.as_deref() {
            None => (1u8, ""),
            Some("none") => (0, ""),
            Some(v) => (0, v),
        };
        let c = f.cursor.clone().unwrap_or(Cursor {
            value: 0,
            start_ns: 0,
            trace_id: String::new(),
            span_id: String::new(),
        });
        let query = self
            .query(&sql, scope)
            .param("from_ns", f.from_ns)
            .param("to_ns", f.to_ns)
            .param("tenant", opt(&f.tenant))
            .param("service", opt(&f.service))
            .param("model", opt(&f.model))
            .param("status", opt(&f.status))
            .param("validation_any", validation_any)
            .param("validation", validation)
            .param(
                "text_like",
                f.text.as_deref().map(like_pattern).unwrap_or_default(),
            )
            .param("has_cursor", u8::from(f.cursor.is_some()))
            .param("c_start", c.start_ns)
            .param("c_dur", u64::try_from(c.value).unwrap_or(0))
            .param("c_cost", decimal_from_i64(c.value).to_string())
            .param("c_trace", c.trace_id.as_str())
            .param("c_span", c.span_id.as_str())
            .param("limit", f.limit);
        Box::pin(self.all(query))
    }

    fn trace_spans(
        &self,
        scope: &Scope,
        trace_id: String,
    ) -> QueryFuture<'_, Option<Vec<SpanSummary>>> {
        let scope = scope.clone();
        Box::pin(async move {
            let locs = self.locate(&scope, &trace_id).await?;
            if locs.is_empty() {
                return Ok(None);
            }
            let sql = format!(
                "SELECT {SUMMARY_COLS}\nFROM loupe.spans{SPAN_WHERE}\nORDER BY start_time, span_id\nLIMIT {MAX_TRACE_SPANS}"
            );
            let mut spans = Vec::new();
            for loc in locs {
                let q = self
                    .query(&sql, &scope)
                    .param("tenant", loc.tenant_id.as_str())
                    .param("from_ns", loc.from_ns)
                    .param("to_ns", loc.to_ns)
                    .param("trace_id", trace_id.as_str());
                spans.extend(self.all::<SpanSummary>(q).await?);
            }
            spans.sort_by(|a, b| a.start_ns.cmp(&b.start_ns).then(a.span_id.cmp(&b.span_id)));
            Ok(Some(spans))
        })
    }

    fn span_detail(
        &self,
        scope: &Scope,
        trace_id: String,
        span_id: String,
    ) -> QueryFuture<'_, Option<SpanDetail>> {
        let scope = scope.clone();
        Box::pin(async move {
            for loc in self.locate(&scope, &trace_id).await? {
                let bind = |sql: &str| {
                    self.query(sql, &scope)
                        .param("tenant", loc.tenant_id.as_str())
                        .param("from_ns", loc.from_ns)
                        .param("to_ns", loc.to_ns)
                        .param("trace_id", trace_id.as_str())
                        .param("span_id", span_id.as_str())
                };
                let one = "\n  AND span_id = {span_id:String}\nLIMIT 1";
                let summary: Vec<SpanSummary> = self
                    .all(bind(&format!(
                        "SELECT {SUMMARY_COLS}\nFROM loupe.spans{SPAN_WHERE}{one}"
                    )))
                    .await?;
                let Some(summary) = summary.into_iter().next() else {
                    continue;
                };
                let bodies: Vec<SpanBodies> = self
                    .all(bind(&format!(
                        "SELECT {BODY_COLS}\nFROM loupe.spans{SPAN_WHERE}{one}"
                    )))
                    .await?;
                let Some(bodies) = bodies.into_iter().next() else {
                    continue;
                };
                let evaluations = self.all(bind(EVALS_SQL)).await?;
                return Ok(Some(SpanDetail {
                    summary,
                    bodies,
                    evaluations,
                }));
            }
            Ok(None)
        })
    }

    fn alert_activity(
        &self,
        scope: &Scope,
        since_ns: i64,
        limit: u32,
    ) -> QueryFuture<'_, AlertActivity> {
        let events = self
            .query(ALERT_EVENTS_SQL, scope)
            .param("from_ns", since_ns)
            .param("limit", limit);
        let heartbeat = self.client.query(HEARTBEAT_SQL);
        Box::pin(async move {
            let events = self.all::<AlertEventRow>(events).await?;
            let beats = self.all::<i64>(heartbeat).await?;
            Ok(AlertActivity {
                last_heartbeat_ns: beats.first().copied().filter(|t| *t > 0),
                events,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_text_literally() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("<script>"), "%<script>%");
    }
}
