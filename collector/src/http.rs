//! OTLP/HTTP receiver (`POST /v1/traces`, `POST /v1/logs`) and the
//! collector's own endpoints (`/metrics`, `/healthz`, `/readyz`).
//!
//! Handlers are thin: limit and read the body, decode (crate::decode), call
//! the one ingest path, encode the answer in the request's encoding.
//! Invariants: a body is never read past `max_body_bytes`; at most
//! `max_concurrent_requests` exports are decoded at once (more get 429 at
//! once, before their body is read); errors are a `google.rpc.Status` in the
//! request's encoding (plain text when the encoding itself is unknown), with
//! `Retry-After` on retryable ones; bodies are never logged.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use crate::decode::{self, Encoding};
use crate::error::IngestError;
use crate::ingest::{Caller, Ingest, Outcome};

pub const PATH_TRACES: &str = "/v1/traces";
pub const PATH_LOGS: &str = "/v1/logs";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the HTTP handlers share.
pub struct HttpState {
    pub ingest: Arc<Ingest>,
    /// Header carrying the ingest key (lowercase).
    pub key_header: String,
    pub slots: Arc<Semaphore>,
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub retry_after_secs: u64,
}

/// The OTLP/HTTP router (tests drive it with `oneshot`).
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route(PATH_TRACES, post(traces))
        .route(PATH_LOGS, post(logs))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// `google.rpc.Status`, the OTLP/HTTP error body.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn error_response(e: &IngestError, enc: Option<Encoding>, retry_after: u64) -> Response {
    let a = e.answer();
    let msg = e.public_message();
    let mut resp = match enc {
        Some(enc) => {
            let status = RpcStatus {
                code: a.grpc as i32,
                message: msg,
            };
            (
                a.http,
                [(header::CONTENT_TYPE, enc.content_type())],
                decode::encode_reply(&status, enc),
            )
                .into_response()
        }
        None => (a.http, msg).into_response(),
    };
    if a.retryable {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
    resp
}

/// Read and decode a body within the limits; the common half of both routes.
async fn read_body(
    st: &HttpState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(bytes::Bytes, Encoding), (IngestError, Option<Encoding>)> {
    let enc = Encoding::from_content_type(header_str(headers, header::CONTENT_TYPE))
        .map_err(|e| (e, None))?;
    let declared = header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > st.max_body_bytes as u64) {
        return Err((
            IngestError::BodyTooLarge {
                limit: st.max_body_bytes,
            },
            Some(enc),
        ));
    }
    let limited = http_body_util::Limited::new(body, st.max_body_bytes);
    let raw = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err((
                IngestError::BodyTooLarge {
                    limit: st.max_body_bytes,
                },
                Some(enc),
            ));
        }
        Err(e) => {
            return Err((
                IngestError::BadProtobuf {
                    what: "request body",
                    detail: format!("reading the body failed: {e}"),
                },
                Some(enc),
            ));
        }
    };
    if raw.is_empty() {
        return Err((IngestError::EmptyBody, Some(enc)));
    }
    let plain = decode::decompress(
        raw,
        header_str(headers, header::CONTENT_ENCODING),
        st.max_decompressed_bytes,
    )
    .map_err(|e| (e, Some(enc)))?;
    Ok((plain, enc))
}

/// The caller, from the key header; refused before the body is read.
fn caller(st: &HttpState, headers: &HeaderMap) -> Result<Caller, IngestError> {
    let presented = headers
        .get(st.key_header.as_str())
        .and_then(|v| v.to_str().ok());
    st.ingest.caller(presented)
}

/// An export past the checks both signals share: authenticated, holding a
/// concurrency slot, body read, decompressed and decoded within the limits.
/// The raw body is dropped once decoded.
struct Accepted<'a, R> {
    caller: Caller,
    request: R,
    enc: Encoding,
    _slot: tokio::sync::SemaphorePermit<'a>,
}

async fn accept<'a, R>(
    st: &'a HttpState,
    headers: &HeaderMap,
    body: Body,
    decode: fn(bytes::Bytes, Encoding) -> Result<R, IngestError>,
) -> Result<Accepted<'a, R>, Response> {
    let caller = caller(st, headers).map_err(|e| error_response(&e, None, st.retry_after_secs))?;
    let Ok(slot) = st.slots.try_acquire() else {
        return Err(refuse(st, IngestError::Busy, headers, body).await);
    };
    let (plain, enc) = read_body(st, headers, body)
        .await
        .map_err(|(e, enc)| fail(st, &e, enc))?;
    let request = decode(plain, enc).map_err(|e| fail(st, &e, Some(enc)))?;
    Ok(Accepted {
        caller,
        request,
        enc,
        _slot: slot,
    })
}

/// The OTLP answer in the request's encoding.
fn answer<M: prost::Message + serde::Serialize>(
    st: &HttpState,
    enc: Encoding,
    reply: Result<M, IngestError>,
) -> Response {
    match reply {
        Ok(m) => ok(enc, decode::encode_reply(&m, enc)),
        Err(e) => error_response(&e, Some(enc), st.retry_after_secs),
    }
}

async fn traces(State(st): State<Arc<HttpState>>, headers: HeaderMap, body: Body) -> Response {
    let a = match accept(&st, &headers, body, decode::decode_traces).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let reply = st.ingest.export_traces(a.request, &a.caller).await;
    answer(&st, a.enc, reply.map(Outcome::traces_reply))
}

async fn logs(State(st): State<Arc<HttpState>>, headers: HeaderMap, body: Body) -> Response {
    let a = match accept(&st, &headers, body, decode::decode_logs).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let reply = st.ingest.export_logs(a.request, &a.caller).await;
    answer(&st, a.enc, reply.map(Outcome::logs_reply))
}

fn ok(enc: Encoding, body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, enc.content_type())],
        body,
    )
        .into_response()
}

/// A refusal made before ingest ran: counted here.
fn fail(st: &HttpState, e: &IngestError, enc: Option<Encoding>) -> Response {
    st.ingest.count_refusal(e);
    tracing::debug!(error = %e, "otlp/http export refused");
    error_response(e, enc, st.retry_after_secs)
}

/// Refuse before decoding. The body is read and discarded (never held, and
/// never more than the body cap) so the client reads a clean 429 on a
/// connection that stays usable, instead of a broken pipe mid-upload.
async fn refuse(st: &HttpState, e: IngestError, headers: &HeaderMap, mut body: Body) -> Response {
    let mut seen = 0usize;
    while seen <= st.max_body_bytes {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, bytes::Bytes::len),
            _ => break,
        }
    }
    let enc = Encoding::from_content_type(header_str(headers, header::CONTENT_TYPE)).ok();
    fail(st, &e, enc)
}

async fn metrics(State(st): State<Arc<HttpState>>) -> Response {
    (
        [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
        st.ingest.render_metrics(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(st): State<Arc<HttpState>>) -> Response {
    match st.ingest.not_ready() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}
