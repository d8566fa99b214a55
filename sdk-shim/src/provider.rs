//! Which API a request speaks, which upstream it goes to, and how each API spells
//! an error.
//!
//! Only the five captured routes are classified; everything else is pass-through.
//! Upstream URLs are the provider's base URL (in its SDK's form) plus the path the
//! SDK would have appended: for OpenAI the client path minus its `/v1`, for
//! Anthropic the whole client path.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::json;

use crate::config::ShimConfig;
use crate::error::ProxyError;

/// The wire format of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAi,
    Anthropic,
}

impl Api {
    pub fn provider_name(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
        }
    }
}

/// A captured route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Responses,
    Messages,
}

impl Endpoint {
    /// Captured routes are POSTs to exactly these paths.
    pub fn classify(method: &Method, path: &str) -> Option<Endpoint> {
        if method != Method::POST {
            return None;
        }
        match path.trim_end_matches('/') {
            "/v1/chat/completions" => Some(Endpoint::Chat),
            "/v1/completions" => Some(Endpoint::Completions),
            "/v1/embeddings" => Some(Endpoint::Embeddings),
            "/v1/responses" => Some(Endpoint::Responses),
            "/v1/messages" => Some(Endpoint::Messages),
            _ => None,
        }
    }

    pub fn api(self) -> Api {
        match self {
            Endpoint::Messages => Api::Anthropic,
            _ => Api::OpenAi,
        }
    }

    /// `gen_ai.operation.name`.
    pub fn operation(self) -> &'static str {
        match self {
            Endpoint::Chat | Endpoint::Responses | Endpoint::Messages => "chat",
            Endpoint::Completions => "text_completion",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

/// Where one call goes: base URL and the provider name its span carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub base_url: String,
    pub provider: String,
}

/// The upstream of a captured call: the first model-prefix rule that matches, else
/// the API's configured base URL.
pub fn upstream_for(cfg: &ShimConfig, api: Api, model: &str) -> Upstream {
    if !model.is_empty()
        && let Some(rule) = cfg
            .routes
            .iter()
            .find(|r| model.starts_with(&r.model_prefix))
    {
        return Upstream {
            base_url: rule.base_url.clone(),
            provider: rule
                .provider
                .clone()
                .unwrap_or_else(|| api.provider_name().to_owned()),
        };
    }
    Upstream {
        base_url: match api {
            Api::OpenAi => cfg.openai_base_url.clone(),
            Api::Anthropic => cfg.anthropic_base_url.clone(),
        },
        provider: api.provider_name().to_owned(),
    }
}

/// The API of a pass-through request: Anthropic's SDK always sends
/// `anthropic-version` (and authenticates with `x-api-key`); everything else is OpenAI's.
pub fn passthrough_api(headers: &HeaderMap) -> Api {
    if headers.contains_key("anthropic-version") || headers.contains_key("x-api-key") {
        Api::Anthropic
    } else {
        Api::OpenAi
    }
}

/// Base URL + the path the provider's SDK would append, keeping the query.
pub fn upstream_uri(api: Api, base_url: &str, client: &Uri) -> Result<Uri, ProxyError> {
    let path = client.path();
    let suffix = match api {
        Api::OpenAi => path
            .strip_prefix("/v1")
            .filter(|p| p.is_empty() || p.starts_with('/'))
            .unwrap_or(path),
        Api::Anthropic => path,
    };
    let mut url = format!("{}{}", base_url.trim_end_matches('/'), suffix);
    if let Some(q) = client.query() {
        url.push('?');
        url.push_str(q);
    }
    url.parse().map_err(|_| ProxyError::BadUpstreamUrl)
}

/// An error answered by the shim itself, in the calling API's format.
pub fn error_response(api: Api, err: &ProxyError) -> Response {
    let message = err.to_string();
    let body = match api {
        Api::OpenAi => json!({
            "error": {
                "message": message,
                "type": openai_type(err),
                "param": null,
                "code": err.kind(),
            }
        }),
        Api::Anthropic => json!({
            "type": "error",
            "error": { "type": anthropic_type(err), "message": message }
        }),
    };
    (err.status(), axum::Json(body)).into_response()
}

fn openai_type(err: &ProxyError) -> &'static str {
    match err.status() {
        StatusCode::UNAUTHORIZED => "invalid_request_error",
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => "invalid_request_error",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        _ => "api_error",
    }
}

fn anthropic_type(err: &ProxyError) -> &'static str {
    match err.status() {
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::BAD_REQUEST => "invalid_request_error",
        StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
        StatusCode::GATEWAY_TIMEOUT => "timeout_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteRule;

    #[test]
    fn classifies_only_captured_posts() {
        assert_eq!(
            Endpoint::classify(&Method::POST, "/v1/chat/completions"),
            Some(Endpoint::Chat)
        );
        assert_eq!(
            Endpoint::classify(&Method::POST, "/v1/messages"),
            Some(Endpoint::Messages)
        );
        assert_eq!(
            Endpoint::classify(&Method::GET, "/v1/chat/completions"),
            None
        );
        assert_eq!(Endpoint::classify(&Method::POST, "/v1/files"), None);
    }

    #[test]
    fn uris_follow_each_sdks_base_url_form() {
        let c: Uri = "/v1/chat/completions?x=1".parse().unwrap();
        assert_eq!(
            upstream_uri(Api::OpenAi, "https://api.openai.com/v1/", &c)
                .unwrap()
                .to_string(),
            "https://api.openai.com/v1/chat/completions?x=1"
        );
        let m: Uri = "/v1/messages".parse().unwrap();
        assert_eq!(
            upstream_uri(Api::Anthropic, "http://127.0.0.1:9", &m)
                .unwrap()
                .to_string(),
            "http://127.0.0.1:9/v1/messages"
        );
        let models: Uri = "/v1/models".parse().unwrap();
        assert_eq!(
            upstream_uri(Api::OpenAi, "http://h/v1", &models)
                .unwrap()
                .to_string(),
            "http://h/v1/models"
        );
    }

    #[test]
    fn model_prefix_rules_pick_the_upstream() {
        let cfg = ShimConfig {
            routes: vec![RouteRule {
                model_prefix: "llama".into(),
                base_url: "http://127.0.0.1:11434/v1".into(),
                provider: Some("ollama".into()),
            }],
            ..ShimConfig::default()
        };
        let u = upstream_for(&cfg, Api::OpenAi, "llama3.1:8b");
        assert_eq!(u.provider, "ollama");
        assert_eq!(u.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(upstream_for(&cfg, Api::OpenAi, "gpt-4o").provider, "openai");
    }
}
