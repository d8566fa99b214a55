//! Webhook delivery: a task fed through a bounded queue, so evaluation (and
//! everything else) never waits on a receiver. Each notification goes to every
//! webhook as generic JSON or Slack-compatible text; failures are retried with
//! exponential backoff (timeouts, connection errors, 429 and 5xx), counted,
//! and recorded in `loupe.alert_deliveries`. A full queue drops and counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use store::Store;
use tokio::sync::mpsc;

use crate::config::{WebhookConfig, WebhookFormat};
use crate::history::{self, DeliveryRow};
use crate::state::{Event, Notification};

/// Notifications waiting for delivery.
pub const QUEUE: usize = 1024;

type Https = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// Delivery counters, per webhook in configuration order.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub delivered: Vec<AtomicU64>,
    pub failed: Vec<AtomicU64>,
    pub dropped: AtomicU64,
}

/// The sending side, held by the evaluator.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Notification>,
    stats: Arc<DeliveryStats>,
}

impl Outbox {
    /// Queues a notification; never waits. A full queue drops it (counted).
    pub fn offer(&self, n: Notification) {
        if self.tx.try_send(n).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("alert delivery queue full; notification dropped");
        }
    }
}

/// Starts the delivery task. It ends when every [`Outbox`] is dropped.
pub fn start(
    webhooks: Vec<WebhookConfig>,
    dashboard_url: String,
    store: Arc<Store>,
) -> (Outbox, Arc<DeliveryStats>, tokio::task::JoinHandle<()>) {
    let stats = Arc::new(DeliveryStats {
        delivered: webhooks.iter().map(|_| AtomicU64::new(0)).collect(),
        failed: webhooks.iter().map(|_| AtomicU64::new(0)).collect(),
        dropped: AtomicU64::new(0),
    });
    let (tx, mut rx) = mpsc::channel::<Notification>(QUEUE);
    let client = client();
    let task_stats = Arc::clone(&stats);
    let task = tokio::spawn(async move {
        while let Some(n) = rx.recv().await {
            let sends = webhooks.iter().enumerate().map(|(i, w)| {
                let client = client.clone();
                let body = payload(w.format, &n, &dashboard_url);
                async move { (i, send(&client, w, body).await) }
            });
            let outcomes = futures_util::future::join_all(sends).await;
            let mut rows = Vec::with_capacity(outcomes.len());
            for (i, outcome) in outcomes {
                let counter = if outcome.ok {
                    &task_stats.delivered[i]
                } else {
                    &task_stats.failed[i]
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if !outcome.ok {
                    tracing::warn!(webhook = %webhooks[i].name, attempts = outcome.attempts, error = %outcome.error, "alert delivery failed");
                }
                rows.push(DeliveryRow {
                    time: i64::try_from(n.at).unwrap_or(0).saturating_mul(1000),
                    webhook: webhooks[i].name.clone(),
                    rule: n.observation.key.rule.clone(),
                    tenant_id: n.observation.key.tenant.clone(),
                    subject: n.observation.key.subject.clone(),
                    event: n.event.as_str().to_string(),
                    ok: outcome.ok,
                    attempts: u8::try_from(outcome.attempts).unwrap_or(u8::MAX),
                    status: outcome.status,
                    error: outcome.error,
                });
            }
            if let Err(e) = history::record_deliveries(&store, &rows).await {
                tracing::warn!(error = %e, "could not record alert deliveries");
            }
        }
    });
    (
        Outbox {
            tx,
            stats: Arc::clone(&stats),
        },
        stats,
        task,
    )
}

fn client() -> Client<Https, Full<Bytes>> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

/// The body sent to a webhook.
pub fn payload(format: WebhookFormat, n: &Notification, dashboard_url: &str) -> Bytes {
    let o = &n.observation;
    let link = format!("{}{}", dashboard_url.trim_end_matches('/'), o.link);
    let value = match format {
        WebhookFormat::Json => serde_json::json!({
            "event": n.event.as_str(),
            "rule": o.key.rule,
            "kind": o.kind,
            "severity": o.severity.as_str(),
            "tenant": o.key.tenant,
            "subject": o.key.subject,
            "summary": o.summary,
            "value": o.value,
            "threshold": o.threshold,
            "since": n.since,
            "at": n.at,
            "link": link,
        }),
        WebhookFormat::Slack => {
            let head = match n.event {
                Event::Firing => format!(
                    ":rotating_light: *{}* {}",
                    o.severity.as_str().to_uppercase(),
                    o.key.rule
                ),
                Event::Renotify => format!(
                    ":hourglass: *still firing* {} ({})",
                    o.key.rule,
                    o.severity.as_str()
                ),
                Event::Resolved => format!(":white_check_mark: *resolved* {}", o.key.rule),
            };
            serde_json::json!({ "text": format!("{head}\n{}\n<{link}|Open in Loupe>", o.summary) })
        }
    };
    Bytes::from(value.to_string())
}

struct Outcome {
    ok: bool,
    attempts: u32,
    status: u16,
    error: String,
}

async fn send(client: &Client<Https, Full<Bytes>>, w: &WebhookConfig, body: Bytes) -> Outcome {
    let mut last = Outcome {
        ok: false,
        attempts: 0,
        status: 0,
        error: String::new(),
    };
    let attempts = w.max_attempts.max(1);
    for attempt in 0..attempts {
        last.attempts = attempt + 1;
        if attempt > 0 {
            let backoff =
                Duration::from_millis(500u64 << (attempt - 1).min(6)).min(Duration::from_secs(30));
            tokio::time::sleep(backoff).await;
        }
        let req = match hyper::Request::post(&w.url)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("loupe-alerts/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body.clone()))
        {
            Ok(r) => r,
            Err(e) => {
                last.error = format!("invalid request: {e}");
                return last;
            }
        };
        let timeout = Duration::from_millis(w.timeout_ms.max(1));
        match tokio::time::timeout(timeout, client.request(req)).await {
            Err(_) => last.error = format!("timed out after {timeout:?}"),
            Ok(Err(e)) => last.error = format!("connection failed: {e}"),
            Ok(Ok(resp)) => {
                let status = resp.status();
                last.status = status.as_u16();
                let _ = tokio::time::timeout(timeout, resp.into_body().collect()).await;
                if status.is_success() {
                    last.ok = true;
                    last.error.clear();
                    return last;
                }
                last.error = format!("HTTP {status}");
                if status.is_client_error() && status.as_u16() != 429 {
                    return last; // the receiver will not change its mind
                }
            }
        }
    }
    last
}
