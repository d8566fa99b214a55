-- Loupe migrations rendered for cluster loupe_cluster.
-- Tables are Replicated*MergeTree `<name>_local` with a Distributed table under the original name.

CREATE DATABASE IF NOT EXISTS loupe ON CLUSTER loupe_cluster;

CREATE TABLE IF NOT EXISTS loupe.schema_migrations_local ON CLUSTER loupe_cluster
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/loupe/schema_migrations_local', '{replica}')
ORDER BY version;

CREATE TABLE IF NOT EXISTS loupe.schema_migrations ON CLUSTER loupe_cluster AS loupe.schema_migrations_local
ENGINE = Distributed(loupe_cluster, loupe, schema_migrations_local, rand());

-- 0001_spans
CREATE DATABASE IF NOT EXISTS loupe ON CLUSTER loupe_cluster;

CREATE TABLE IF NOT EXISTS loupe.spans_local ON CLUSTER loupe_cluster
(
    tenant_id LowCardinality(String),
    start_time DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    trace_id String,
    span_id String,
    parent_span_id String,
    end_time DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    duration_ns UInt64 CODEC(T64, ZSTD(1)),
    name LowCardinality(String),
    kind LowCardinality(String),
    service_name LowCardinality(String),
    scope_name LowCardinality(String),
    scope_version LowCardinality(String),
    status_code LowCardinality(String),
    status_message String CODEC(ZSTD(3)),
    llm_call Bool,
    operation LowCardinality(String),
    provider LowCardinality(String),
    request_model LowCardinality(String),
    response_model LowCardinality(String),
    response_id String CODEC(ZSTD(1)),
    finish_reasons Array(LowCardinality(String)),
    error_type LowCardinality(String),
    http_status Nullable(UInt16),
    streaming Nullable(Bool),
    ttft_ns Nullable(UInt64),
    input_tokens Nullable(UInt64),
    output_tokens Nullable(UInt64),
    cache_read_tokens Nullable(UInt64),
    cache_write_tokens Nullable(UInt64),
    reasoning_tokens Nullable(UInt64),
    total_tokens Nullable(UInt64),
    counted Bool,
    cost_input Decimal(18, 12),
    cost_output Decimal(18, 12),
    cost_cache_read Decimal(18, 12),
    cost_cache_write Decimal(18, 12),
    cost_total Decimal(18, 12),
    currency LowCardinality(String),
    price_status LowCardinality(String),
    price_version LowCardinality(String),
    request_params Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    tool_name LowCardinality(String),
    tool_call_id String CODEC(ZSTD(1)),
    input_preview String CODEC(ZSTD(3)),
    output_preview String CODEC(ZSTD(3)),
    input_messages String CODEC(ZSTD(6)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days),
    output_messages String CODEC(ZSTD(6)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days),
    tool_definitions String CODEC(ZSTD(6)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days),
    output_schema String CODEC(ZSTD(6)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days),
    output_type LowCardinality(String),
    user_id String CODEC(ZSTD(1)),
    session_id String CODEC(ZSTD(1)),
    feature LowCardinality(String),
    source_convention LowCardinality(String),
    attributes Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    events String CODEC(ZSTD(3)),
    validation LowCardinality(String),
    truncated UInt32,
    redacted Bool,
    retention_days UInt16,
    body_retention_days UInt16,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/loupe/spans_local', '{replica}')
PARTITION BY toDate(start_time)
ORDER BY (tenant_id, toStartOfHour(start_time), trace_id, span_id)
TTL toDateTime(start_time) + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 0;

CREATE TABLE IF NOT EXISTS loupe.spans ON CLUSTER loupe_cluster AS loupe.spans_local
ENGINE = Distributed(loupe_cluster, loupe, spans_local, cityHash64(tenant_id, trace_id));

CREATE TABLE IF NOT EXISTS loupe.trace_index_local ON CLUSTER loupe_cluster
(
    trace_id String,
    tenant_id LowCardinality(String),
    start_time SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
    end_time SimpleAggregateFunction(max, DateTime64(9, 'UTC')),
    span_count SimpleAggregateFunction(sum, UInt64),
    retention_days SimpleAggregateFunction(max, UInt16)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/loupe/trace_index_local', '{replica}')
ORDER BY (trace_id, tenant_id)
TTL toDateTime(end_time) + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS loupe.trace_index ON CLUSTER loupe_cluster AS loupe.trace_index_local
ENGINE = Distributed(loupe_cluster, loupe, trace_index_local, cityHash64(trace_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS loupe.trace_index_mv ON CLUSTER loupe_cluster TO loupe.trace_index_local AS
SELECT
    trace_id,
    tenant_id,
    min(start_time) AS start_time,
    max(end_time) AS end_time,
    count() AS span_count,
    max(retention_days) AS retention_days
FROM loupe.spans_local
GROUP BY trace_id, tenant_id;

CREATE TABLE IF NOT EXISTS loupe.evaluations_local ON CLUSTER loupe_cluster
(
    tenant_id LowCardinality(String),
    time DateTime64(9, 'UTC'),
    trace_id String,
    span_id String,
    name LowCardinality(String),
    label LowCardinality(String),
    outcome LowCardinality(String),
    score Nullable(Float64),
    explanation String CODEC(ZSTD(3)),
    source LowCardinality(String),
    provider LowCardinality(String),
    request_model LowCardinality(String),
    response_model LowCardinality(String),
    feature LowCardinality(String),
    service_name LowCardinality(String),
    retention_days UInt16
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/loupe/evaluations_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (tenant_id, toStartOfHour(time), name, trace_id, span_id)
TTL toDateTime(time) + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS loupe.evaluations ON CLUSTER loupe_cluster AS loupe.evaluations_local
ENGINE = Distributed(loupe_cluster, loupe, evaluations_local, cityHash64(tenant_id, trace_id));

-- 0002_rollups
CREATE TABLE IF NOT EXISTS loupe.usage_hourly_local ON CLUSTER loupe_cluster
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/loupe/usage_hourly_local', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, hour, provider, request_model, response_model, feature, service_name, operation, price_status, currency)
TTL hour + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS loupe.usage_hourly ON CLUSTER loupe_cluster AS loupe.usage_hourly_local
ENGINE = Distributed(loupe_cluster, loupe, usage_hourly_local, cityHash64(tenant_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS loupe.usage_hourly_mv ON CLUSTER loupe_cluster TO loupe.usage_hourly_local AS
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
FROM loupe.spans_local AS s
WHERE llm_call
GROUP BY tenant_id, hour, provider, request_model, response_model, feature, service_name, operation, price_status, currency;

CREATE TABLE IF NOT EXISTS loupe.validation_hourly_local ON CLUSTER loupe_cluster
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/loupe/validation_hourly_local', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, hour, name, request_model, response_model, provider, feature, source)
TTL hour + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS loupe.validation_hourly ON CLUSTER loupe_cluster AS loupe.validation_hourly_local
ENGINE = Distributed(loupe_cluster, loupe, validation_hourly_local, cityHash64(tenant_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS loupe.validation_hourly_mv ON CLUSTER loupe_cluster TO loupe.validation_hourly_local AS
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
FROM loupe.evaluations_local
GROUP BY tenant_id, hour, name, provider, request_model, response_model, feature, source;

-- 0003_alerts
CREATE TABLE IF NOT EXISTS loupe.alert_events_local ON CLUSTER loupe_cluster
(
    time DateTime64(3, 'UTC'),
    rule LowCardinality(String),
    kind LowCardinality(String),
    tenant_id LowCardinality(String),
    subject String,
    event LowCardinality(String),
    severity LowCardinality(String),
    summary String,
    value Float64,
    threshold Float64,
    link String,
    since DateTime('UTC')
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/loupe/alert_events_local', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (tenant_id, time, rule, subject)
TTL toDateTime(time) + INTERVAL 400 DAY;

CREATE TABLE IF NOT EXISTS loupe.alert_events ON CLUSTER loupe_cluster AS loupe.alert_events_local
ENGINE = Distributed(loupe_cluster, loupe, alert_events_local, cityHash64(tenant_id));

CREATE TABLE IF NOT EXISTS loupe.alert_deliveries_local ON CLUSTER loupe_cluster
(
    time DateTime64(3, 'UTC'),
    webhook LowCardinality(String),
    rule LowCardinality(String),
    tenant_id LowCardinality(String),
    subject String,
    event LowCardinality(String),
    ok Bool,
    attempts UInt8,
    status UInt16,
    error String
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/loupe/alert_deliveries_local', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (time, webhook)
TTL toDateTime(time) + INTERVAL 90 DAY;

CREATE TABLE IF NOT EXISTS loupe.alert_deliveries ON CLUSTER loupe_cluster AS loupe.alert_deliveries_local
ENGINE = Distributed(loupe_cluster, loupe, alert_deliveries_local, cityHash64(webhook));

CREATE TABLE IF NOT EXISTS loupe.alert_heartbeats_local ON CLUSTER loupe_cluster
(
    time DateTime64(3, 'UTC'),
    instance String
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/loupe/alert_heartbeats_local', '{replica}')
ORDER BY (time, instance)
TTL toDateTime(time) + INTERVAL 1 DAY;

CREATE TABLE IF NOT EXISTS loupe.alert_heartbeats ON CLUSTER loupe_cluster AS loupe.alert_heartbeats_local
ENGINE = Distributed(loupe_cluster, loupe, alert_heartbeats_local, cityHash64(instance));

-- 0004_dashboard
ALTER TABLE loupe.spans_local ON CLUSTER loupe_cluster ADD INDEX IF NOT EXISTS idx_start_time start_time TYPE minmax GRANULARITY 1;

ALTER TABLE loupe.spans_local ON CLUSTER loupe_cluster ADD INDEX IF NOT EXISTS idx_input_preview lowerUTF8(input_preview) TYPE ngrambf_v1(3, 32768, 3, 7) GRANULARITY 2;

ALTER TABLE loupe.spans_local ON CLUSTER loupe_cluster ADD INDEX IF NOT EXISTS idx_output_preview lowerUTF8(output_preview) TYPE ngrambf_v1(3, 32768, 3, 7) GRANULARITY 2;

CREATE TABLE IF NOT EXISTS loupe.latency_hourly_local ON CLUSTER loupe_cluster
(
    tenant_id LowCardinality(String),
    hour DateTime('UTC'),
    calls SimpleAggregateFunction(sum, UInt64),
    duration_ms AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Float64),
    ttft_ms AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Float64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/loupe/latency_hourly_local', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, hour)
TTL hour + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS loupe.latency_hourly ON CLUSTER loupe_cluster AS loupe.latency_hourly_local
ENGINE = Distributed(loupe_cluster, loupe, latency_hourly_local, cityHash64(tenant_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS loupe.latency_hourly_mv ON CLUSTER loupe_cluster TO loupe.latency_hourly_local AS
SELECT
    tenant_id,
    toStartOfHour(start_time) AS hour,
    countIf(counted) AS calls,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(duration_ns / 1e6, counted) AS duration_ms,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(ifNull(ttft_ns, 0) / 1e6, counted AND ttft_ns IS NOT NULL) AS ttft_ms
FROM loupe.spans_local
WHERE llm_call
GROUP BY tenant_id, hour;

-- 0005_ingest_cost
ALTER TABLE loupe.spans_local ON CLUSTER loupe_cluster DROP INDEX IF EXISTS idx_input_preview;

ALTER TABLE loupe.spans_local ON CLUSTER loupe_cluster DROP INDEX IF EXISTS idx_output_preview;

ALTER TABLE loupe.spans_local ON CLUSTER loupe_cluster MODIFY SETTING min_bytes_for_wide_part = 268435456;

ALTER TABLE loupe.spans_local ON CLUSTER loupe_cluster MODIFY COLUMN input_messages String CODEC(ZSTD(1)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days);

ALTER TABLE loupe.spans ON CLUSTER loupe_cluster MODIFY COLUMN input_messages String CODEC(ZSTD(1)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days);

ALTER TABLE loupe.spans_local ON CLUSTER loupe_cluster MODIFY COLUMN output_messages String CODEC(ZSTD(1)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days);

ALTER TABLE loupe.spans ON CLUSTER loupe_cluster MODIFY COLUMN output_messages String CODEC(ZSTD(1)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days);

ALTER TABLE loupe.spans_local ON CLUSTER loupe_cluster MODIFY COLUMN tool_definitions String CODEC(ZSTD(1)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days);

ALTER TABLE loupe.spans ON CLUSTER loupe_cluster MODIFY COLUMN tool_definitions String CODEC(ZSTD(1)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days);

ALTER TABLE loupe.spans_local ON CLUSTER loupe_cluster MODIFY COLUMN output_schema String CODEC(ZSTD(1)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days);

ALTER TABLE loupe.spans ON CLUSTER loupe_cluster MODIFY COLUMN output_schema String CODEC(ZSTD(1)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days);

