-- The dashboard (issue 6): skip indexes for the traces list, and a small latency rollup for the overview.
-- The list filters `spans` by time across tenants and by text in the
-- previews; the sort key starts with the tenant, so without these a query
-- with no tenant reads every granule of the day's partitions.
-- ADD INDEX applies to parts written from now on; MATERIALIZE INDEX is left
-- to an operator on big existing tables (it rewrites parts).

-- Hour-level pruning by start time within a daily partition, any tenant.
ALTER TABLE loupe.spans ADD INDEX IF NOT EXISTS idx_start_time start_time TYPE minmax GRANULARITY 1;

-- Case-insensitive substring search in the 240-character previews
-- (`lowerUTF8(col) LIKE lowerUTF8('%text%')` uses these).
ALTER TABLE loupe.spans ADD INDEX IF NOT EXISTS idx_input_preview lowerUTF8(input_preview) TYPE ngrambf_v1(3, 32768, 3, 7) GRANULARITY 2;
ALTER TABLE loupe.spans ADD INDEX IF NOT EXISTS idx_output_preview lowerUTF8(output_preview) TYPE ngrambf_v1(3, 32768, 3, 7) GRANULARITY 2;

-- Latency by tenant and hour only. The overview's p50/p95 trend merges one
-- t-digest state per row it reads: from `usage_hourly` (one row per tenant ×
-- hour × provider × models × feature × service × …) that was the slowest
-- dashboard query at 10M spans; here it is one row per tenant and hour.
-- Fed from spans inserted after this migration (no backfill).
-- loupe:shard_key cityHash64(tenant_id)
CREATE TABLE IF NOT EXISTS loupe.latency_hourly
(
    tenant_id LowCardinality(String),
    hour DateTime('UTC'),
    calls SimpleAggregateFunction(sum, UInt64),
    duration_ms AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Float64),
    ttft_ms AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, hour)
TTL hour + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS loupe.latency_hourly_mv TO loupe.latency_hourly AS
SELECT
    tenant_id,
    toStartOfHour(start_time) AS hour,
    countIf(counted) AS calls,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(duration_ns / 1e6, counted) AS duration_ms,
    quantilesTDigestStateIf(0.5, 0.9, 0.95, 0.99)(ifNull(ttft_ns, 0) / 1e6, counted AND ttft_ns IS NOT NULL) AS ttft_ms
FROM loupe.spans
WHERE llm_call
GROUP BY tenant_id, hour;
