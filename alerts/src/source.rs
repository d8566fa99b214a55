//! What the rules read, behind a trait so the evaluator is testable without a
//! database, and its one implementation over the store's read-only client.
//!
//! Every query reads rollups or narrow columns (never bodies) and binds every
//! value as a query parameter. Times are Unix seconds or nanoseconds.

use std::future::Future;

use clickhouse::Row;
use rust_decimal::Decimal;
use serde::Deserialize;
use store::{Store, StoreError};

use crate::detect::Counts;

/// Validation counts of one (tenant, request model, evaluation, response model).
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct SeriesRow {
    pub tenant_id: String,
    pub request_model: String,
    pub name: String,
    pub response_model: String,
    pub total: u64,
    pub failed: u64,
}

impl SeriesRow {
    pub fn counts(&self) -> Counts {
        Counts {
            total: self.total,
            failed: self.failed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct UnpricedRow {
    pub tenant_id: String,
    pub provider: String,
    pub request_model: String,
    pub calls: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct RunawayRow {
    pub tenant_id: String,
    pub trace_id: String,
    pub tokens: u64,
    pub calls: u64,
}

/// Month-to-date spend of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendRow {
    pub tenant_id: String,
    pub cost: Decimal,
}

pub trait Source: Send + Sync {
    /// Raw validation counts in `[from_ns, to_ns)` (the window).
    fn window_series(
        &self,
        from_ns: i64,
        to_ns: i64,
        evaluation: Option<&str>,
    ) -> impl Future<Output = Result<Vec<SeriesRow>, StoreError>> + Send;

    /// Hourly-rollup validation counts for hours in `[from_s, to_s)` (the baseline).
    fn baseline_series(
        &self,
        from_s: i64,
        to_s: i64,
        evaluation: Option<&str>,
    ) -> impl Future<Output = Result<Vec<SeriesRow>, StoreError>> + Send;

    /// Cost per tenant for hours from `from_s` on.
    fn spend_since(
        &self,
        from_s: i64,
    ) -> impl Future<Output = Result<Vec<SpendRow>, StoreError>> + Send;

    /// Calls of unpriced models for hours from `from_s` on.
    fn unpriced_since(
        &self,
        from_s: i64,
    ) -> impl Future<Output = Result<Vec<UnpricedRow>, StoreError>> + Send;

    /// Traces started since `from_ns` whose counted tokens or model calls exceed a limit.
    fn runaway_since(
        &self,
        from_ns: i64,
        max_tokens: u64,
        max_calls: u64,
    ) -> impl Future<Output = Result<Vec<RunawayRow>, StoreError>> + Send;
}

/// The store as a [`Source`].
pub struct StoreSource<'a> {
    pub store: &'a Store,
}

const EVAL_FILTER: &str = "({evaluation:String} = '' OR name = {evaluation:String})";

impl Source for StoreSource<'_> {
    async fn window_series(
        &self,
        from_ns: i64,
        to_ns: i64,
        evaluation: Option<&str>,
    ) -> Result<Vec<SeriesRow>, StoreError> {
        let sql = format!(
            "SELECT tenant_id, request_model, name, response_model, count() AS total, countIf(outcome = 'fail') AS failed \
             FROM loupe.evaluations \
             WHERE time >= fromUnixTimestamp64Nano({{from:Int64}}) AND time < fromUnixTimestamp64Nano({{to:Int64}}) AND {EVAL_FILTER} \
             GROUP BY tenant_id, request_model, name, response_model"
        );
        Ok(self
            .store
            .reader()
            .query(&sql)
            .param("from", from_ns)
            .param("to", to_ns)
            .param("evaluation", evaluation.unwrap_or(""))
            .fetch_all()
            .await?)
    }

    async fn baseline_series(
        &self,
        from_s: i64,
        to_s: i64,
        evaluation: Option<&str>,
    ) -> Result<Vec<SeriesRow>, StoreError> {
        let sql = format!(
            "SELECT tenant_id, request_model, name, response_model, sum(total) AS total, sum(failed) AS failed \
             FROM loupe.validation_hourly \
             WHERE hour >= toDateTime({{from:Int64}}) AND hour < toDateTime({{to:Int64}}) AND {EVAL_FILTER} \
             GROUP BY tenant_id, request_model, name, response_model"
        );
        Ok(self
            .store
            .reader()
            .query(&sql)
            .param("from", from_s)
            .param("to", to_s)
            .param("evaluation", evaluation.unwrap_or(""))
            .fetch_all()
            .await?)
    }

    async fn spend_since(&self, from_s: i64) -> Result<Vec<SpendRow>, StoreError> {
        let rows: Vec<(String, String)> = self
            .store
            .reader()
            .query(
                "SELECT tenant_id, toString(sum(cost_total)) FROM loupe.usage_hourly \
                 WHERE hour >= toDateTime({from:Int64}) GROUP BY tenant_id",
            )
            .param("from", from_s)
            .fetch_all()
            .await?;
        rows.into_iter()
            .map(|(tenant_id, cost)| {
                let cost = cost.parse::<Decimal>().map_err(|e| {
                    StoreError::Query(format!("cost {cost:?} is not a decimal: {e}"))
                })?;
                Ok(SpendRow { tenant_id, cost })
            })
            .collect()
    }

    async fn unpriced_since(&self, from_s: i64) -> Result<Vec<UnpricedRow>, StoreError> {
        Ok(self
            .store
            .reader()
            .query(
                "SELECT tenant_id, provider, request_model, sum(calls) AS calls FROM loupe.usage_hourly \
                 WHERE hour >= toStartOfHour(toDateTime({from:Int64})) AND price_status = 'unpriced_model' \
                 GROUP BY tenant_id, provider, request_model HAVING calls > 0",
            )
            .param("from", from_s)
            .fetch_all()
            .await?)
    }

    async fn runaway_since(
        &self,
        from_ns: i64,
        max_tokens: u64,
        max_calls: u64,
    ) -> Result<Vec<RunawayRow>, StoreError> {
        Ok(self
            .store
            .reader()
            .query(
                "SELECT tenant_id, trace_id, \
                        sum(ifNull(input_tokens, 0) + ifNull(output_tokens, 0)) AS tokens, count() AS calls \
                 FROM loupe.spans \
                 WHERE start_time >= fromUnixTimestamp64Nano({from:Int64}) AND llm_call AND counted \
                 GROUP BY tenant_id, trace_id \
                 HAVING tokens > {max_tokens:UInt64} OR calls > {max_calls:UInt64} \
                 ORDER BY tokens DESC LIMIT 200",
            )
            .param("from", from_ns)
            .param("max_tokens", max_tokens)
            .param("max_calls", max_calls)
            .fetch_all()
            .await?)
    }
}
