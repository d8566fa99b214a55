-- Loupe schema v1: the wide span table, the trace index and the evaluations.
-- Append-only: never edit an applied migration; add a new numbered file.
-- Every statement is idempotent (IF NOT EXISTS) so a half-applied migration
-- can be re-run. `-- loupe:shard_key EXPR` names the sharding key used when
-- the migrations are rendered for a cluster (`loupe migrate --cluster`).

CREATE DATABASE IF NOT EXISTS loupe;

-- One wide, immutable row per span. Trace-level attribution (tenant, user,
-- session, feature, service) is copied onto every span so no query joins.
-- Bodies live in their own ZSTD columns with a shorter TTL; list and chart
-- queries read the previews and rollups, never the bodies.
-- loupe:shard_key cityHash64(tenant_id, trace_id)
CREATE TABLE IF NOT EXISTS loupe.spans
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
    -- false when another span already counts this provider call (one call, one cost)
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
    -- summary of the span's evaluations: '' none, 'pass', 'fail'
    validation LowCardinality(String),
    truncated UInt32,
    redacted Bool,
    retention_days UInt16,
    body_retention_days UInt16,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toDate(start_time)
ORDER BY (tenant_id, toStartOfHour(start_time), trace_id, span_id)
TTL toDateTime(start_time) + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 0;

-- trace id -> tenant and time range, so a whole trace is fetched by primary
-- key ranges of `spans` instead of a scan.
-- loupe:shard_key cityHash64(trace_id)
CREATE TABLE IF NOT EXISTS loupe.trace_index
(
    trace_id String,
    tenant_id LowCardinality(String),
    start_time SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
    end_time SimpleAggregateFunction(max, DateTime64(9, 'UTC')),
    span_count SimpleAggregateFunction(sum, UInt64),
    retention_days SimpleAggregateFunction(max, UInt16)
)
ENGINE = AggregatingMergeTree
ORDER BY (trace_id, tenant_id)
TTL toDateTime(end_time) + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS loupe.trace_index_mv TO loupe.trace_index AS
SELECT
    trace_id,
    tenant_id,
    min(start_time) AS start_time,
    max(end_time) AS end_time,
    count() AS span_count,
    max(retention_days) AS retention_days
FROM loupe.spans
GROUP BY trace_id, tenant_id;

-- gen_ai.evaluation.result outcomes, from the app, the collector or the shim.
-- loupe:shard_key cityHash64(tenant_id, trace_id)
CREATE TABLE IF NOT EXISTS loupe.evaluations
(
    tenant_id LowCardinality(String),
    time DateTime64(9, 'UTC'),
    trace_id String,
    span_id String,
    name LowCardinality(String),
    label LowCardinality(String),
    -- 'pass' | 'fail' | 'other', derived from label/score at ingest
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
ENGINE = MergeTree
PARTITION BY toDate(time)
ORDER BY (tenant_id, toStartOfHour(time), name, trace_id, span_id)
TTL toDateTime(time) + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 10000;
