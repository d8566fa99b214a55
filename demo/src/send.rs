//! Sends export requests to a collector over OTLP/HTTP (protobuf), as any
//! OpenTelemetry SDK would: POST `/v1/traces`, retrying the answers OTLP calls
//! retryable (429, 502, 503, 504) after their `Retry-After`, a bounded number
//! of times, with a bounded number of requests in flight.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::sync::Semaphore;

const MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("invalid collector URL {0}")]
    Url(String),
    #[error("cannot reach the collector at {url}: {reason} (is `loupe up` running?)")]
    Unreachable { url: String, reason: String },
    #[error("the collector refused a batch: HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("the collector stayed busy after {MAX_ATTEMPTS} attempts")]
    Busy,
}

/// An OTLP/HTTP trace exporter with `in_flight` concurrent requests.
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
    url: String,
    /// `Authorization` value when the collector requires an ingest key.
    authorization: Option<String>,
    permits: Arc<Semaphore>,
}

impl Sender {
    pub fn new(endpoint: &str, in_flight: usize, key: Option<&str>) -> Result<Self, SendError> {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        url.parse::<hyper::Uri>()
            .map_err(|_| SendError::Url(url.clone()))?;
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            url,
            authorization: key.map(|k| format!("Bearer {k}")),
            permits: Arc::new(Semaphore::new(in_flight.max(1))),
        })
    }

    /// Sends one request, waiting for a free slot first.
    pub async fn send(&self, req: &ExportTraceServiceRequest) -> Result<(), SendError> {
        let _permit = self.permits.acquire().await.map_err(|_| SendError::Busy)?;
        let body = Bytes::from(req.encode_to_vec());
        for attempt in 0..MAX_ATTEMPTS {
            let mut request =
                hyper::Request::post(&self.url).header("content-type", "application/x-protobuf");
            if let Some(auth) = &self.authorization {
                request = request.header("authorization", auth);
            }
            let request = request
                .body(Full::new(body.clone()))
                .map_err(|_| SendError::Url(self.url.clone()))?;
            let resp = self
                .client
                .request(request)
                .await
                .map_err(|e| SendError::Unreachable {
                    url: self.url.clone(),
                    reason: e.to_string(),
                })?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            match status {
                200..=299 => return Ok(()),
                429 | 502 | 503 | 504 => {
                    let wait = retry_after
                        .map(Duration::from_secs)
                        .unwrap_or(Duration::from_millis(200 << attempt.min(5)));
                    tracing::debug!(status, ?wait, "collector busy, retrying");
                    tokio::time::sleep(wait.min(Duration::from_secs(10))).await;
                }
                _ => {
                    return Err(SendError::Refused {
                        status,
                        body: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
                    });
                }
            }
        }
        Err(SendError::Busy)
    }
}
