-- Alerts: every notification the evaluator decided on (firing, renotify,
-- resolved), every webhook delivery attempt's outcome, and the evaluators'
-- heartbeats (only one instance evaluates at a time: the live one with the
-- smallest id).

-- loupe:shard_key cityHash64(tenant_id)
CREATE TABLE IF NOT EXISTS loupe.alert_events
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
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (tenant_id, time, rule, subject)
TTL toDateTime(time) + INTERVAL 400 DAY;

-- loupe:shard_key cityHash64(webhook)
CREATE TABLE IF NOT EXISTS loupe.alert_deliveries
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
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, webhook)
TTL toDateTime(time) + INTERVAL 90 DAY;

-- loupe:shard_key cityHash64(instance)
CREATE TABLE IF NOT EXISTS loupe.alert_heartbeats
(
    time DateTime64(3, 'UTC'),
    instance String
)
ENGINE = MergeTree
ORDER BY (time, instance)
TTL toDateTime(time) + INTERVAL 1 DAY;
