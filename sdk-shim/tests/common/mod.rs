//! Test harness: the mock provider, a minimal OTLP/HTTP receiver (protobuf,
//! decoded with prost and run through `schemas::process_batch`), and a shim in
//! front of both.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod mock;
pub mod sdk;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use schemas::pricing::PriceTable;
use schemas::{CanonicalSpan, NormalizeContext};
use sdk_shim::{Shim, ShimConfig};
use tokio::sync::oneshot;

pub use mock::Mock;

#[derive(Default)]
pub struct Received {
    pub raw: Mutex<Vec<Vec<u8>>>,
    pub requests: Mutex<Vec<ExportTraceServiceRequest>>,
    /// Delay before answering (to fill the shim's queue).
    pub delay: Mutex<Duration>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Received>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let got = Arc::new(Received::default());
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .with_state(got.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { addr, got }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every received span, normalised, validated and priced by the schemas crate.
    pub fn spans(&self) -> Vec<CanonicalSpan> {
        let prices = PriceTable::bundled().unwrap();
        let reqs = self.got.requests.lock().unwrap().clone();
        reqs.into_iter()
            .flat_map(|r| schemas::process_batch(r, None, &NormalizeContext::default(), &prices))
            .collect()
    }

    pub async fn wait_for(&self, n: usize) -> Vec<CanonicalSpan> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let spans = self.spans();
            if spans.len() >= n || Instant::now() > deadline {
                assert!(spans.len() >= n, "expected {n} spans, got {}", spans.len());
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn raw_text(&self) -> String {
        self.got
            .raw
            .lock()
            .unwrap()
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }
}

async fn traces(State(got): State<Arc<Received>>, body: Bytes) -> Vec<u8> {
    let delay = *got.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let req = ExportTraceServiceRequest::decode(body.as_ref()).expect("protobuf export");
    got.raw.lock().unwrap().push(body.to_vec());
    got.requests.lock().unwrap().push(req);
    ExportTraceServiceResponse::default().encode_to_vec()
}

pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), sdk_shim::ShimError>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

pub fn config(mock: &Mock, receiver: &Receiver) -> ShimConfig {
    ShimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        openai_base_url: mock.openai_base(),
        anthropic_base_url: mock.anthropic_base(),
        otlp_endpoint: receiver.endpoint(),
        read_timeout_ms: 1_000,
        connect_timeout_ms: 1_000,
        ..ShimConfig::default()
    }
}

pub async fn start_shim(cfg: ShimConfig) -> Running {
    let bound = Shim::bind(&cfg).await.unwrap();
    let addr = bound.addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        task,
    }
}

/// Mock, receiver and a shim between them.
pub async fn setup() -> (Mock, Receiver, Running) {
    let mock = Mock::start().await;
    let receiver = Receiver::start().await;
    let shim = start_shim(config(&mock, &receiver)).await;
    (mock, receiver, shim)
}
