//! The shim's closed error enums: [`ShimError`] for the embedding binary (bind,
//! configuration, exporter, serving), [`ProxyError`] for one proxied call, which
//! becomes an error response in the calling provider's format.
//!
//! Invariant: no variant carries a request or response body or a header value, so
//! an error can be logged without leaking prompts or credentials.

use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("shim config: {0}")]
    Config(String),
    #[error("shim cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("shim span exporter: {0}")]
    Exporter(String),
    #[error("shim server: {0}")]
    Serve(std::io::Error),
}

/// Why the shim itself (not the upstream) answers a call with an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    #[error("request body could not be read")]
    BodyRead,
    #[error("upstream did not answer within {0} ms")]
    UpstreamTimeout(u64),
    #[error("upstream connect timed out after {0} ms")]
    ConnectTimeout(u64),
    #[error("upstream unreachable")]
    UpstreamUnavailable,
    #[error("upstream URL could not be built")]
    BadUpstreamUrl,
    #[error("missing or invalid Loupe key (X-Loupe-Key)")]
    Unauthenticated,
}

impl ProxyError {
    /// One table: error → HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::InvalidJson(_) | ProxyError::BodyRead => StatusCode::BAD_REQUEST,
            ProxyError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::UpstreamTimeout(_) | ProxyError::ConnectTimeout(_) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ProxyError::UpstreamUnavailable | ProxyError::BadUpstreamUrl => StatusCode::BAD_GATEWAY,
            ProxyError::Unauthenticated => StatusCode::UNAUTHORIZED,
        }
    }

    /// `error.type` on the span and the provider-neutral kind of the error body.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::InvalidJson(_) | ProxyError::BodyRead => "invalid_request",
            ProxyError::BodyTooLarge(_) => "request_too_large",
            ProxyError::UpstreamTimeout(_) | ProxyError::ConnectTimeout(_) => "timeout",
            ProxyError::UpstreamUnavailable | ProxyError::BadUpstreamUrl => "upstream_unavailable",
            ProxyError::Unauthenticated => "authentication_error",
        }
    }
}
