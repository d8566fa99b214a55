//! The collector's errors, closed at each boundary, and the one table that maps
//! an ingest error to its HTTP status, gRPC code and retryability.
//!
//! Invariants: every client-visible message says what was wrong with the
//! request and never carries internal text (`Internal` keeps its detail for
//! the log only); retryable errors — and only those — carry `Retry-After`.

use std::net::SocketAddr;

use http::StatusCode;
use tonic::Code;

/// Why an export was refused, in whole. (Individual bad spans are not errors:
/// they are dropped and reported as OTLP partial success.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("the request body is empty")]
    EmptyBody,
    #[error("the request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the decompressed request body is larger than the limit of {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error(
        "unsupported content type {0:?}: OTLP/HTTP accepts application/x-protobuf or application/json"
    )]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}: the collector accepts gzip or identity")]
    UnsupportedEncoding(String),
    #[error("the body is not valid gzip: {0}")]
    BadGzip(String),
    #[error("the body is not a valid OTLP protobuf {what}: {detail}")]
    BadProtobuf { what: &'static str, detail: String },
    #[error("{0}")]
    BadJson(String),
    #[error("the request has {count} spans, more than the limit of {limit}")]
    TooManySpans { count: usize, limit: usize },
    #[error("missing or invalid ingest key")]
    Unauthenticated,
    #[error("the collector is busy (too many concurrent exports); retry later")]
    Busy,
    #[error("the collector's queue is full; retry later")]
    QueueFull,
    #[error("the store is unavailable and the spool is full; retry later")]
    SpoolFull,
    #[error("the collector is shutting down; retry later")]
    ShuttingDown,
    #[error("internal error")]
    Internal(String),
}

/// How one error class is answered on each transport.
pub struct Answer {
    pub http: StatusCode,
    pub grpc: Code,
    pub retryable: bool,
}

impl IngestError {
    /// The one mapping table (OTLP spec: 429/502/503/504 and gRPC UNAVAILABLE
    /// are retryable; gRPC RESOURCE_EXHAUSTED is retryable only with RetryInfo,
    /// which we do not send, so every retryable answer is UNAVAILABLE).
    pub fn answer(&self) -> Answer {
        use IngestError::*;
        let (http, grpc, retryable) = match self {
            EmptyBody | BadGzip(_) | BadProtobuf { .. } | BadJson(_) => {
                (StatusCode::BAD_REQUEST, Code::InvalidArgument, false)
            }
            BodyTooLarge { .. } | DecompressedTooLarge { .. } | TooManySpans { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, Code::InvalidArgument, false)
            }
            UnsupportedContentType(_) | UnsupportedEncoding(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::InvalidArgument,
                false,
            ),
            Unauthenticated => (StatusCode::UNAUTHORIZED, Code::Unauthenticated, false),
            Busy | QueueFull => (StatusCode::TOO_MANY_REQUESTS, Code::Unavailable, true),
            SpoolFull | ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, true),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, false),
        };
        Answer {
            http,
            grpc,
            retryable,
        }
    }

    /// What the client is told (internal details stay in the log).
    pub fn public_message(&self) -> String {
        self.to_string()
    }
}

/// Failures starting or running the collector.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("invalid collector configuration: {0}")]
    Config(String),
    #[error("cannot listen for OTLP/{transport} on {addr}: {reason}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        reason: String,
    },
    #[error("spool at {dir}: {reason}")]
    Spool { dir: String, reason: String },
    #[error("OTLP/{transport} server failed: {reason}")]
    Serve {
        transport: &'static str,
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_capacity_errors_are_retryable_and_internal_text_is_hidden() {
        let all = [
            IngestError::EmptyBody,
            IngestError::BodyTooLarge { limit: 1 },
            IngestError::DecompressedTooLarge { limit: 1 },
            IngestError::UnsupportedContentType("text/plain".into()),
            IngestError::UnsupportedEncoding("br".into()),
            IngestError::BadGzip("x".into()),
            IngestError::BadProtobuf {
                what: "trace export",
                detail: "x".into(),
            },
            IngestError::BadJson("x".into()),
            IngestError::TooManySpans { count: 2, limit: 1 },
            IngestError::Busy,
            IngestError::QueueFull,
            IngestError::SpoolFull,
            IngestError::ShuttingDown,
            IngestError::Internal("secret detail".into()),
        ];
        for e in &all {
            let a = e.answer();
            assert_eq!(a.retryable, a.grpc == Code::Unavailable, "{e:?}");
            assert_eq!(
                a.retryable,
                matches!(
                    a.http,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                ),
                "{e:?}"
            );
        }
        assert!(
            !IngestError::Internal("secret detail".into())
                .public_message()
                .contains("secret")
        );
    }
}
