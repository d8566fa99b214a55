//! The proxy core: a captured call (read and check the body, maybe inject usage,
//! forward, tee the response) and a pass-through (stream both ways, capture
//! nothing). When Loupe keys are configured, both need one.
//!
//! Invariants: the client's status, headers and bytes are the upstream's (apart
//! from hop-by-hop headers, the hidden usage chunk, and an identity encoding on
//! captured routes); the shim answers by itself only when there is no upstream
//! answer to pass on (bad JSON, too large, timeout, unreachable), in the calling
//! API's error format; nothing here logs a body or a header value.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{Request, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;

use crate::accumulate::Accumulator;
use crate::config::ShimConfig;
use crate::error::ProxyError;
use crate::export::ExportQueue;
use crate::headers::{Attribution, TraceParent, client_response_headers, upstream_request_headers};
use crate::provider::{Api, Endpoint, error_response, passthrough_api, upstream_for, upstream_uri};
use crate::record::{CallContext, End, Finished};
use crate::request;
use crate::strip::UsageChunkFilter;
use crate::tee::TeeBody;

pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// Largest SSE event the usage filter holds while waiting for its end.
const MAX_FILTER_EVENT: usize = 1 << 20;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Proxy {
    pub cfg: ShimConfig,
    pub keys: schemas::ingest_keys::IngestKeys,
    pub client: HttpClient,
    pub queue: ExportQueue,
}

impl Proxy {
    pub async fn handle(self: Arc<Self>, req: Request<Body>) -> Response {
        let (parts, body) = req.into_parts();
        match Endpoint::classify(&parts.method, parts.uri.path()) {
            Some(ep) => self.captured(ep, parts, body).await,
            None => self.passthrough(parts, body).await,
        }
    }

    /// The tenant an `X-Loupe-Key` proves (`None` when keys are not
    /// configured or the key is a forwarder's); refused when keys are
    /// configured and the key is missing or unknown.
    fn key_tenant(&self, headers: &http::HeaderMap) -> Result<Option<String>, ProxyError> {
        use schemas::ingest_keys::KeyMatch;
        if !self.keys.enabled() {
            return Ok(None);
        }
        let presented = headers
            .get(crate::headers::X_LOUPE_KEY)
            .and_then(|v| v.to_str().ok());
        match presented.and_then(|k| self.keys.lookup(k)) {
            Some(KeyMatch::Tenant(t)) => Ok(Some(t.to_string())),
            Some(KeyMatch::Forwarder) => Ok(None),
            None => Err(ProxyError::Unauthenticated),
        }
    }

    async fn captured(&self, ep: Endpoint, parts: Parts, body: Body) -> Response {
        let api = ep.api();
        let metrics = self.queue.metrics();
        metrics.requests.fetch_add(1, Ordering::Relaxed);
        let key_tenant = match self.key_tenant(&parts.headers) {
            Ok(t) => t,
            Err(e) => return self.refuse(api, e),
        };
        let bytes = match read_body(body, self.cfg.max_request_body_bytes).await {
            Ok(b) => b,
            Err(e) => return self.refuse(api, e),
        };
        let mut json: Value = match serde_json::from_slice(&bytes) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return self.refuse(
                    api,
                    ProxyError::InvalidJson("expected a JSON object".into()),
                );
            }
            Err(e) => return self.refuse(api, ProxyError::InvalidJson(e.to_string())),
        };
        let mut info = request::read(ep, &json, self.cfg.capture_content);
        let injected = request::inject_include_usage(ep, &mut json);
        info.injected_usage = injected;
        let body = if injected {
            match serde_json::to_vec(&json) {
                Ok(v) => Bytes::from(v),
                Err(e) => return self.refuse(api, ProxyError::InvalidJson(e.to_string())),
            }
        } else {
            bytes
        };
        let upstream = upstream_for(&self.cfg, api, &info.model);
        let uri = match upstream_uri(api, &upstream.base_url, &parts.uri) {
            Ok(u) => u,
            Err(e) => return self.refuse(api, e),
        };
        let call = CallContext {
            endpoint: ep,
            provider: upstream.provider,
            server_address: uri.host().unwrap_or_default().to_owned(),
            server_port: uri.port_u16(),
            request: info,
            attribution: Attribution::from_headers(&parts.headers).with_tenant(key_tenant),
            parent: TraceParent::from_headers(&parts.headers),
            start: SystemTime::now(),
            started: Instant::now(),
        };
        let mut out = Request::new(Body::from(body));
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        *out.headers_mut() = upstream_request_headers(&parts.headers, true);
        let resp = match self.send(out).await {
            Ok(r) => r,
            Err(e) => {
                metrics.proxy_errors.fetch_add(1, Ordering::Relaxed);
                let response = error_response(api, &e);
                self.queue.submit(Finished {
                    call,
                    status: None,
                    acc: None,
                    end: End::Failed(e),
                    ended: Instant::now(),
                });
                return response;
            }
        };
        let status = resp.status();
        tracing::debug!(
            endpoint = ?ep,
            provider = %call.provider,
            model = %call.request.model,
            status = status.as_u16(),
            "shim call forwarded"
        );
        if status.is_client_error() || status.is_server_error() {
            metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
        }
        let (rparts, incoming) = resp.into_parts();
        let streaming = rparts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        let strip = injected && streaming && status.is_success();
        let acc = Accumulator::new(ep, streaming, self.cfg.max_capture_bytes);
        let tee = TeeBody::new(
            incoming,
            call,
            status.as_u16(),
            acc,
            self.queue.clone(),
            strip.then(|| UsageChunkFilter::new(MAX_FILTER_EVENT)),
            self.cfg.read_timeout(),
        );
        let mut response = Response::new(Body::new(tee));
        *response.status_mut() = status;
        *response.headers_mut() = client_response_headers(&rparts.headers, strip);
        response
    }

    async fn passthrough(&self, parts: Parts, body: Body) -> Response {
        let api = passthrough_api(&parts.headers);
        self.queue
            .metrics()
            .passthrough
            .fetch_add(1, Ordering::Relaxed);
        // Uncaptured routes need the key too: with keys configured the shim
        // relays nothing for an unknown caller.
        if let Err(e) = self.key_tenant(&parts.headers) {
            return self.refuse(api, e);
        }
        let base = match api {
            Api::OpenAi => &self.cfg.openai_base_url,
            Api::Anthropic => &self.cfg.anthropic_base_url,
        };
        let uri = match upstream_uri(api, base, &parts.uri) {
            Ok(u) => u,
            Err(e) => return self.refuse(api, e),
        };
        let mut out = Request::new(body);
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        *out.headers_mut() = upstream_request_headers(&parts.headers, false);
        match self.send(out).await {
            Ok(resp) => {
                let (rparts, incoming) = resp.into_parts();
                let mut response = Response::new(Body::new(incoming));
                *response.status_mut() = rparts.status;
                *response.headers_mut() = client_response_headers(&rparts.headers, false);
                response
            }
            Err(e) => self.refuse(api, e),
        }
    }

    /// Send upstream, waiting at most the read timeout for the response head.
    async fn send(
        &self,
        req: Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, ProxyError> {
        let timeout = self.cfg.read_timeout();
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => Err(ProxyError::UpstreamTimeout(self.cfg.read_timeout_ms)),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                let timed_out = is_timeout(&e);
                tracing::debug!(
                    connect = e.is_connect(),
                    timed_out,
                    "shim upstream request failed"
                );
                if timed_out {
                    Err(ProxyError::ConnectTimeout(self.cfg.connect_timeout_ms))
                } else {
                    Err(ProxyError::UpstreamUnavailable)
                }
            }
        }
    }

    fn refuse(&self, api: Api, e: ProxyError) -> Response {
        self.queue
            .metrics()
            .proxy_errors
            .fetch_add(1, Ordering::Relaxed);
        error_response(api, &e)
    }
}

async fn read_body(body: Body, max: usize) -> Result<Bytes, ProxyError> {
    match Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ProxyError::BodyTooLarge(max))
        }
        Err(_) => Err(ProxyError::BodyRead),
    }
}

/// Did the connector give up on a timeout (as opposed to a refused connection)?
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        if err.to_string().contains("timed out") {
            return true;
        }
        cur = err.source();
    }
    false
}
