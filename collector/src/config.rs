//! The collector's typed configuration, with every default in one place.
//!
//! Invariants: every limit is finite (bounded everything, DESIGN.md
//! "Reliability"); a config file may name any subset of fields and the rest
//! take the defaults below; unknown fields are an error, so a typo never
//! silently leaves a default in force.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::collections::{BTreeMap, HashMap};

use schemas::ingest_keys::{IngestKeys, KeyEntry};
use schemas::redact::{RedactionConfig, TenantRedactors};
use serde::Deserialize;
use store::rows::Retention;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Longest retention whose TTL stays inside ClickHouse's `DateTime` range.
const MAX_RETENTION_DAYS: u16 = 7_300;

/// Everything the collector needs, parsed once by the binary and passed down.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// OTLP/gRPC listener.
    pub grpc_listen: SocketAddr,
    /// OTLP/HTTP listener (also `/metrics`, `/healthz`, `/readyz`).
    pub http_listen: SocketAddr,
    /// Largest request body accepted as sent (compressed or not): 413 beyond.
    pub max_body_bytes: usize,
    /// Largest body after decompression (gzip bombs): 413 beyond. Also the
    /// gRPC decoding limit.
    pub max_decompressed_bytes: usize,
    /// Longest attribute value kept; longer values are cut with a visible
    /// marker and counted in the span's `truncated`.
    pub max_attribute_bytes: usize,
    /// Most spans one export may carry; more is refused whole.
    pub max_spans_per_request: usize,
    /// Export requests decoded at once, per transport; more get a retryable answer.
    pub max_concurrent_requests: usize,
    /// A batch is written when it holds this many spans...
    pub batch_max_rows: usize,
    /// ...or this many bytes of rows (estimated)...
    pub batch_max_bytes: usize,
    /// ...or when its first rows have waited this long.
    pub batch_max_age_ms: u64,
    /// Bytes of rows accepted but not yet inserted or spooled, across all
    /// requests. A request that finds no room within `queue_wait_ms` gets 429.
    pub queue_capacity_bytes: usize,
    pub queue_wait_ms: u64,
    /// Batches being inserted at once.
    pub writer_concurrency: usize,
    /// An insert that takes longer is abandoned and the batch spooled (the
    /// dedup token makes a late success harmless).
    pub insert_timeout_ms: u64,
    /// The durable spool: one directory per collector.
    pub spool_dir: PathBuf,
    /// The spool's size cap; when full, exports get 503 / UNAVAILABLE.
    pub spool_max_bytes: u64,
    /// A spool segment file is closed and a new one started past this size.
    pub spool_segment_bytes: u64,
    /// Tenant when neither ingest key nor telemetry names one.
    pub default_tenant: String,
    /// Row retention and body retention, in days.
    pub retention_days: u16,
    pub body_retention_days: u16,
    /// How long a model-call span without content waits for the log records
    /// that carry it (0: never wait).
    pub join_wait_ms: u64,
    /// Spans waiting for content at once; beyond it spans are written at once.
    pub join_max_waiting_spans: usize,
    /// Log content held for spans not seen yet: byte cap and age cap.
    pub join_max_parked_bytes: usize,
    pub join_parked_ttl_ms: u64,
    /// Provider calls remembered for one-call-one-cost across requests (0: off).
    pub dedupe_memory: usize,
    /// Seconds a client is told to wait in `Retry-After`.
    pub retry_after_secs: u64,
    /// Ingest API keys; once any is configured every export needs one, and
    /// the key's tenant overrides whatever the telemetry says.
    pub keys: Vec<KeyEntry>,
    /// Header carrying the key (`Authorization: Bearer …` by default; gRPC
    /// reads the same name from metadata).
    pub key_header: String,
    /// Redaction of bodies and attribute values at ingest (secrets on by default).
    pub redaction: RedactionConfig,
    /// Per-tenant retention and redaction.
    pub tenants: BTreeMap<String, TenantSettings>,
}

/// `[collector.tenants.<name>]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    pub retention_days: Option<u16>,
    pub body_retention_days: Option<u16>,
    pub redaction: Option<RedactionConfig>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 4317)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 4318)),
            max_body_bytes: 16 * MIB,
            max_decompressed_bytes: 64 * MIB,
            max_attribute_bytes: MIB,
            max_spans_per_request: 50_000,
            max_concurrent_requests: 32,
            batch_max_rows: 20_000,
            batch_max_bytes: 64 * MIB,
            batch_max_age_ms: 250,
            queue_capacity_bytes: 256 * MIB,
            queue_wait_ms: 2_000,
            writer_concurrency: 2,
            insert_timeout_ms: 30_000,
            spool_dir: PathBuf::from("loupe-data/spool"),
            spool_max_bytes: 1 << 30,
            spool_segment_bytes: 64 << 20,
            default_tenant: "default".to_owned(),
            retention_days: Retention::default().days,
            body_retention_days: Retention::default().body_days,
            join_wait_ms: 2_000,
            join_max_waiting_spans: 50_000,
            join_max_parked_bytes: 64 * MIB,
            join_parked_ttl_ms: 60_000,
            dedupe_memory: 200_000,
            retry_after_secs: 5,
            keys: Vec::new(),
            key_header: "authorization".to_owned(),
            redaction: RedactionConfig::default(),
            tenants: BTreeMap::new(),
        }
    }
}

impl CollectorConfig {
    pub(crate) fn retention(&self) -> Retention {
        Retention {
            days: self.retention_days,
            body_days: self.body_retention_days.min(self.retention_days),
        }
    }

    /// Retention per configured tenant (others use [`Self::retention`]).
    pub(crate) fn tenant_retention(&self) -> HashMap<String, Retention> {
        let base = self.retention();
        self.tenants
            .iter()
            .filter(|(_, t)| t.retention_days.is_some() || t.body_retention_days.is_some())
            .map(|(name, t)| {
                let days = t.retention_days.unwrap_or(base.days);
                let body = t.body_retention_days.unwrap_or(base.body_days).min(days);
                (
                    name.clone(),
                    Retention {
                        days,
                        body_days: body,
                    },
                )
            })
            .collect()
    }

    pub(crate) fn ingest_keys(&self) -> Result<IngestKeys, String> {
        IngestKeys::new(&self.keys).map_err(|e| e.to_string())
    }

    pub(crate) fn redactors(&self) -> Result<TenantRedactors, String> {
        let per: HashMap<String, RedactionConfig> = self
            .tenants
            .iter()
            .filter_map(|(name, t)| t.redaction.clone().map(|r| (name.clone(), r)))
            .collect();
        TenantRedactors::new(&self.redaction, &per).map_err(|e| e.to_string())
    }

    pub(crate) fn batch_max_age(&self) -> Duration {
        Duration::from_millis(self.batch_max_age_ms)
    }

    pub(crate) fn insert_timeout(&self) -> Duration {
        Duration::from_millis(self.insert_timeout_ms)
    }

    /// Zero limits would refuse everything or allow nothing to move: reject
    /// them at start rather than serve a broken collector.
    pub(crate) fn check(&self) -> Result<(), String> {
        let positive = [
            ("max_body_bytes", self.max_body_bytes),
            ("max_decompressed_bytes", self.max_decompressed_bytes),
            ("max_attribute_bytes", self.max_attribute_bytes),
            ("max_spans_per_request", self.max_spans_per_request),
            ("max_concurrent_requests", self.max_concurrent_requests),
            ("batch_max_rows", self.batch_max_rows),
            ("batch_max_bytes", self.batch_max_bytes),
            ("queue_capacity_bytes", self.queue_capacity_bytes),
            ("writer_concurrency", self.writer_concurrency),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("collector.{name} must be greater than 0"));
            }
        }
        if self.retention_days == 0 {
            return Err("collector.retention_days must be greater than 0".to_owned());
        }
        // The TTL is `toDateTime(start_time) + retention`: past DateTime's end
        // (2106) it wraps, and ClickHouse drops the rows at insert, silently.
        if self.retention_days > MAX_RETENTION_DAYS {
            return Err(format!(
                "collector.retention_days must be at most {MAX_RETENTION_DAYS} (about 20 years)"
            ));
        }
        for (name, t) in &self.tenants {
            let days = t.retention_days.unwrap_or(self.retention_days);
            if days == 0 || days > MAX_RETENTION_DAYS {
                return Err(format!(
                    "collector.tenants.{name}.retention_days must be between 1 and {MAX_RETENTION_DAYS}"
                ));
            }
        }
        if self.key_header.trim().is_empty()
            || http::HeaderName::from_bytes(self.key_header.as_bytes()).is_err()
        {
            return Err(format!(
                "collector.key_header {:?} is not a header name",
                self.key_header
            ));
        }
        self.ingest_keys()?;
        self.redactors()?;
        if self.spool_max_bytes < self.spool_segment_bytes.min(1 << 20) {
            return Err("collector.spool_max_bytes is too small (at least 1 MiB)".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_config_takes_defaults_and_typos_are_errors() {
        let cfg: CollectorConfig =
            serde_json::from_str(r#"{"http_listen":"127.0.0.1:0","batch_max_rows":5}"#)
                .unwrap_or_default();
        assert_eq!(cfg.batch_max_rows, 5);
        assert_eq!(cfg.grpc_listen, CollectorConfig::default().grpc_listen);
        assert!(serde_json::from_str::<CollectorConfig>(r#"{"batch_max_row":5}"#).is_err());
        assert!(CollectorConfig::default().check().is_ok());
        let zero = CollectorConfig {
            writer_concurrency: 0,
            ..CollectorConfig::default()
        };
        assert!(zero.check().is_err());
        let forever = CollectorConfig {
            retention_days: 36_500,
            ..CollectorConfig::default()
        };
        assert!(forever.check().is_err());
    }
}
