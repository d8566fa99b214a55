-- Rollups: aggregate-state tables fed by materialized views, so dashboard and
-- alert queries read thousands of rows instead of millions of spans.
-- Tokens, cost and calls count only `counted` spans (one provider call, one
-- cost); `spans` counts every LLM span. Absent token counts add nothing and
-- are tracked by `calls_missing_usage`, so a total never claims completeness
-- it does not have.
-- Every target table keeps a deduplication window: a retried insert into
-- `spans` is pushed through the views again (ClickHouse >= 24.7), and the
-- targets drop it themselves (`deduplicate_blocks_in_dependent_materialized_views`).

-- loupe:shard_key cityHash64(tenant_id)
CREATE TABLE IF NOT EXISTS loupe.usage_hourly
(
    tenant_id LowCardinality(String),
    hour DateTime('UTC'),
    provider LowCardinality(String),
    request_model LowCardinality(String),
    response_model LowCardinality(String),
    feature LowCardinality(String),
    service_name LowCardinality(String),
    operation LowCardinality(String),
    price_status LowCardinality(String),
    currency LowCardinality(String),
    spans SimpleAggregateFunction(sum, UInt64),
    calls SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    calls_missing_usage SimpleAggregateFunction(sum, UInt64),
    input_tokens SimpleAggregateFunction(sum, UInt64),
    output_tokens SimpleAggregateFunction(sum, UInt64),
    cache_read_tokens SimpleAggregateFunction(sum, UInt64),
    cache_write_tokens SimpleAggregateFunction(sum, UInt64),
    reasoning_tokens SimpleAggregateFunction(sum, UInt64),
    cost_input SimpleAggregateFunction(sum, Decimal(38, 12)),
    cost_output SimpleAggregateFunction(sum, Decimal(38, 12)),
    cost_cache_read SimpleAggregateFunction(sum, Decimal(38, 12)),
    cost_cache_write SimpleAggregateFunction(sum, Decimal(38, 12)),
    cost_total SimpleAggregateFunction(sum, Decimal(38, 12)),
    duration_ms AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Float64),
    ttft_ms AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, hour, provider, request_model, response_model, feature, service_name, operation, price_status, currency)
TTL hour + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS loupe.usage_hourly_mv TO loupe.usage_hourly AS
SELECT
    tenant_id,
    toStartOfHour(start_time) AS hour,
    provider,
    request_model,
    response_model,
    feature,
    service_name,
    operation,
    price_status,
    currency,
    count() AS spans,
    countIf(counted) AS calls,
    countIf(counted AND status_code = 'error') AS errors,
    countIf(counted AND s.input_tokens IS NULL AND s.output_tokens IS NULL AND status_code != 'error') AS calls_missing_usage,
    sumIf(ifNull(input_tokens, 0), counted) AS input_tokens,
    sumIf(ifNull(output_tokens, 0), counted) AS output_tokens,
    sumIf(ifNull(cache_read_tokens, 0), counted) AS cache_read_tokens,
    sumIf(ifNull(cache_write_tokens, 0), counted) AS cache_write_tokens,
    sumIf(ifNull(reasoning_tokens, 0), counted) AS reasoning_tokens,
    sumIf(toDecimal128(cost_input, 12), counted) AS cost_input,
    sumIf(toDecimal128(cost_output, 12), counted) AS cost_output,
    sumIf(toDecimal128(cost_cache_read, 12), counted) AS cost_cache_read,
    sumIf(toDecimal128(cost_cache_write, 12), counted) AS cost_cache_write,
    sumIf(toDecimal128(cost_total, 12), counted) AS cost_total,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(duration_ns / 1e6, counted) AS duration_ms,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(ifNull(ttft_ns, 0) / 1e6, counted AND ttft_ns IS NOT NULL) AS ttft_ms
FROM loupe.spans AS s
WHERE llm_call
GROUP BY tenant_id, hour, provider, request_model, response_model, feature, service_name, operation, price_status, currency;

-- loupe:shard_key cityHash64(tenant_id)
CREATE TABLE IF NOT EXISTS loupe.validation_hourly
(
    tenant_id LowCardinality(String),
    hour DateTime('UTC'),
    name LowCardinality(String),
    provider LowCardinality(String),
    request_model LowCardinality(String),
    response_model LowCardinality(String),
    feature LowCardinality(String),
    source LowCardinality(String),
    total SimpleAggregateFunction(sum, UInt64),
    passed SimpleAggregateFunction(sum, UInt64),
    failed SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, hour, name, request_model, response_model, provider, feature, source)
TTL hour + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS loupe.validation_hourly_mv TO loupe.validation_hourly AS
SELECT
    tenant_id,
    toStartOfHour(time) AS hour,
    name,
    provider,
    request_model,
    response_model,
    feature,
    source,
    count() AS total,
    countIf(outcome = 'pass') AS passed,
    countIf(outcome = 'fail') AS failed
FROM loupe.evaluations
GROUP BY tenant_id, hour, name, provider, request_model, response_model, feature, source;
