//! Shim configuration: one typed struct, one place for defaults.
//!
//! Every field has a default (see [`ShimConfig::default`]), so an empty TOML table
//! is a working config. Environment overrides come in as a map ([`ShimConfig::with_env`])
//! so that neither this crate nor its tests read the process environment.
//!
//! Base URLs are written the way each provider's SDK takes its `base_url`: the
//! OpenAI one ends in `/v1` (the SDK appends `/chat/completions`), the Anthropic one
//! does not (the SDK appends `/v1/messages`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ShimError;

pub const ENV_OPENAI_BASE_URL: &str = "LOUPE_OPENAI_BASE_URL";
pub const ENV_ANTHROPIC_BASE_URL: &str = "LOUPE_ANTHROPIC_BASE_URL";

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4000";
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// OTLP/HTTP (protobuf) on the collector's default port; `/v1/traces` is appended.
pub const DEFAULT_OTLP_ENDPOINT: &str = "http://127.0.0.1:4318";

/// How spans leave the shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies; the endpoint is a base URL (`/v1/traces` appended).
    #[default]
    HttpProtobuf,
    /// OTLP/gRPC; the endpoint is the collector's gRPC address (e.g. `http://127.0.0.1:4317`).
    Grpc,
}

/// Sends calls whose request model starts with `model_prefix` to another upstream
/// (a self-hosted vLLM, Ollama, a gateway...). First matching rule wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    pub model_prefix: String,
    /// Base URL in the SDK's form for the API the call speaks (OpenAI: ending in `/v1`).
    pub base_url: String,
    /// `gen_ai.provider.name` for these calls (e.g. `ollama`); the API's provider when absent.
    #[serde(default)]
    pub provider: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShimConfig {
    pub listen: SocketAddr,
    pub openai_base_url: String,
    pub anthropic_base_url: String,
    pub routes: Vec<RouteRule>,
    pub otlp_endpoint: String,
    pub otlp_protocol: OtlpProtocol,
    /// Timeout of one OTLP export request.
    pub otlp_timeout_ms: u64,
    /// TCP (and TLS) connect timeout to the upstream; exceeded → 504.
    pub connect_timeout_ms: u64,
    /// Longest wait for the upstream's response headers, and between two body
    /// chunks once streaming; exceeded → 504 (before headers) or a cut stream.
    pub read_timeout_ms: u64,
    /// Finished calls waiting for export; when full, new spans are dropped and counted.
    pub queue_capacity: usize,
    /// Bytes of captured bodies waiting for export; beyond it spans are dropped and counted.
    pub max_queued_bytes: usize,
    /// Largest client request body accepted on captured routes (413 beyond).
    pub max_request_body_bytes: usize,
    /// Largest response body (or streamed text) kept for the span; the client still
    /// gets every byte, the span's content is cut.
    pub max_capture_bytes: usize,
    /// Record prompts and completions (`gen_ai.input.messages` / `gen_ai.output.messages`).
    pub capture_content: bool,
    pub service_name: String,
    /// Ingest keys clients present in `X-Loupe-Key`; when any is set, captured
    /// routes refuse calls without a valid one, and the key's tenant wins
    /// over `X-Loupe-Tenant`.
    #[serde(skip_serializing)]
    pub keys: Vec<schemas::ingest_keys::KeyEntry>,
    /// Headers sent with every OTLP export (e.g. `authorization` with a
    /// forwarder key for a collector that requires keys). HTTP export only.
    #[serde(skip_serializing)]
    pub otlp_headers: std::collections::BTreeMap<String, String>,
}

impl Default for ShimConfig {
    fn default() -> Self {
        ShimConfig {
            keys: Vec::new(),
            otlp_headers: std::collections::BTreeMap::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            openai_base_url: DEFAULT_OPENAI_BASE_URL.to_owned(),
            anthropic_base_url: DEFAULT_ANTHROPIC_BASE_URL.to_owned(),
            routes: Vec::new(),
            otlp_endpoint: DEFAULT_OTLP_ENDPOINT.to_owned(),
            otlp_protocol: OtlpProtocol::HttpProtobuf,
            otlp_timeout_ms: 10_000,
            connect_timeout_ms: 10_000,
            read_timeout_ms: 600_000,
            queue_capacity: 4096,
            max_queued_bytes: 256 << 20,
            max_request_body_bytes: 32 << 20,
            max_capture_bytes: 8 << 20,
            capture_content: true,
            service_name: "loupe-shim".to_owned(),
        }
    }
}

impl ShimConfig {
    /// Apply `LOUPE_OPENAI_BASE_URL` / `LOUPE_ANTHROPIC_BASE_URL` from an environment map.
    pub fn with_env(mut self, env: &HashMap<String, String>) -> Self {
        if let Some(v) = env
            .get(ENV_OPENAI_BASE_URL)
            .filter(|v| !v.trim().is_empty())
        {
            self.openai_base_url = v.trim().to_owned();
        }
        if let Some(v) = env
            .get(ENV_ANTHROPIC_BASE_URL)
            .filter(|v| !v.trim().is_empty())
        {
            self.anthropic_base_url = v.trim().to_owned();
        }
        self
    }

    /// Reject URLs the proxy could not use, naming the field.
    pub fn check(&self) -> Result<(), ShimError> {
        let mut urls = vec![
            ("openai_base_url", self.openai_base_url.as_str()),
            ("anthropic_base_url", self.anthropic_base_url.as_str()),
            ("otlp_endpoint", self.otlp_endpoint.as_str()),
        ];
        urls.extend(
            self.routes
                .iter()
                .map(|r| ("routes.base_url", r.base_url.as_str())),
        );
        for (field, url) in urls {
            let ok = url.parse::<http::Uri>().ok().is_some_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            });
            if !ok {
                return Err(ShimError::Config(format!(
                    "{field}: `{url}` is not an http(s) URL"
                )));
            }
        }
        if self.queue_capacity == 0 {
            return Err(ShimError::Config(
                "queue_capacity must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.max(1))
    }

    pub(crate) fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_is_the_default() {
        let c: ShimConfig = toml_like("{}");
        assert_eq!(c, ShimConfig::default());
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        c.check().unwrap();
    }

    fn toml_like(json: &str) -> ShimConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn env_overrides_base_urls() {
        let env = HashMap::from([
            (
                ENV_OPENAI_BASE_URL.to_owned(),
                "http://127.0.0.1:9/v1".to_owned(),
            ),
            (ENV_ANTHROPIC_BASE_URL.to_owned(), " ".to_owned()),
        ]);
        let c = ShimConfig::default().with_env(&env);
        assert_eq!(c.openai_base_url, "http://127.0.0.1:9/v1");
        assert_eq!(c.anthropic_base_url, DEFAULT_ANTHROPIC_BASE_URL);
    }

    #[test]
    fn bad_urls_are_named() {
        let c = ShimConfig {
            routes: vec![RouteRule {
                model_prefix: "llama".into(),
                base_url: "localhost:11434".into(),
                provider: None,
            }],
            ..ShimConfig::default()
        };
        let err = c.check().unwrap_err().to_string();
        assert!(err.contains("routes.base_url"), "{err}");
    }
}
