//! The evaluator against the real embedded engine, with a real HTTP webhook
//! receiver: spikes against a week of baseline, budgets, unpriced models,
//! runaway traces, renotify, resolve, restart, and webhooks that fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_arguments)]

#[path = "../../store/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alerts::Evaluator;
use alerts::config::{AlertsConfig, RuleConfig, RuleKind, WebhookConfig, WebhookFormat};
use alerts::state::{Event, Severity};
use axum::routing::post;
use schemas::span::{CanonicalSpan, Evaluation, Operation, PriceStatus};
use store::Store;
use store::rows::{EvaluationRow, Retention, SpanRow, tables};

const HOUR: u64 = 3600;

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A webhook receiver that records bodies; `fail_first` answers 500 that many times.
#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    fail_first: Arc<Mutex<u32>>,
    delay: Duration,
}

impl Receiver {
    async fn start(self) -> String {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(move |body: axum::body::Bytes| {
                let me = me.clone();
                async move {
                    tokio::time::sleep(me.delay).await;
                    {
                        let mut f = me.fail_first.lock().unwrap();
                        if *f > 0 {
                            *f -= 1;
                            return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                        }
                    }
                    me.bodies
                        .lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/hook")
    }

    fn events(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| b["event"].as_str().unwrap_or("?").to_string())
            .collect()
    }
}

/// Closes the store once the evaluator's delivery task has let go of it.
async fn close(store: Arc<Store>) {
    assert!(
        Store::close_shared(store, Duration::from_secs(5)).await,
        "the store is still shared"
    );
}

fn webhook(url: String, timeout_ms: u64) -> WebhookConfig {
    WebhookConfig {
        name: "test".into(),
        url,
        format: WebhookFormat::Json,
        timeout_ms,
        max_attempts: 4,
    }
}

/// `n` validations per hour for hours `[from_h, to_h)` before `now`, failing
/// at `rate`, answered by `response_model`.
async fn validations(
    store: &Store,
    now: u64,
    from_h: u64,
    to_h: u64,
    per_hour: u64,
    rate: f64,
    response_model: &str,
) {
    let mut ins = store
        .insert::<EvaluationRow>(tables::EVALUATIONS, None)
        .await
        .unwrap();
    for h in to_h..from_h {
        let fails = (per_hour as f64 * rate).round() as u64;
        for i in 0..per_hour {
            let t = (now - (h + 1) * HOUR) * 1_000_000_000
                + (i + 1) * (HOUR * 1_000_000_000 / (per_hour + 1));
            let span = CanonicalSpan {
                tenant_id: "globex".into(),
                trace_id: format!("{h:016x}{i:016x}"),
                span_id: format!("{i:016x}"),
                start_time_unix_nano: t,
                end_time_unix_nano: t,
                provider: "openai".into(),
                request_model: "gpt-4o-mini".into(),
                response_model: response_model.into(),
                evaluations: vec![Evaluation {
                    name: "json_schema".into(),
                    label: if i < fails {
                        "fail".into()
                    } else {
                        "pass".into()
                    },
                    source: "collector".into(),
                    ..Default::default()
                }],
                ..Default::default()
            };
            for r in EvaluationRow::from_canonical(&span, Retention::default()) {
                ins.write(&r).await.unwrap();
            }
        }
    }
    ins.end().await.unwrap();
}

fn spike_only(webhooks: Vec<WebhookConfig>) -> AlertsConfig {
    let mut cfg = AlertsConfig {
        webhooks,
        renotify_secs: 2 * HOUR,
        ..Default::default()
    };
    cfg.rules = cfg
        .effective_rules()
        .into_iter()
        .filter(|r| r.name == "validation-failure-spike")
        .collect();
    cfg
}

#[tokio::test]
async fn a_validation_spike_fires_once_renotifies_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::migrated_store(&dir).await);
    let hook = Receiver::default();
    let url = hook.clone().start().await;
    let now = now_s();
    // A week at a stable 2 %: nothing fires.
    validations(&store, now, 24 * 7, 0, 100, 0.02, "gpt-4o-mini-2024-07-18").await;
    let (mut ev, handle) =
        Evaluator::new(spike_only(vec![webhook(url, 2000)]), Arc::clone(&store)).unwrap();
    assert!(
        ev.tick(now).await.is_empty(),
        "a stable rate raises nothing"
    );

    // The next hour: the response model changes and 20 % fail.
    let later = now + HOUR;
    validations(&store, later, 1, 0, 100, 0.20, "gpt-4o-mini-2025-04-14").await;
    let notes = ev.tick(later).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].event, Event::Firing);
    let summary = &notes[0].observation.summary;
    assert!(
        summary.contains("from gpt-4o-mini-2024-07-18 to gpt-4o-mini-2025-04-14"),
        "{summary}"
    );
    assert!(
        ev.tick(later + 60).await.is_empty(),
        "no second notification while firing"
    );
    assert_eq!(handle.firing().len(), 1);
    assert!(
        handle
            .metrics()
            .contains("loupe_alert_firing{rule=\"validation-failure-spike\"")
    );

    // Reminder after the renotify interval (the window still holds the spike).
    validations(
        &store,
        later + 2 * HOUR,
        1,
        0,
        100,
        0.20,
        "gpt-4o-mini-2025-04-14",
    )
    .await;
    let notes = ev.tick(later + 2 * HOUR).await;
    assert_eq!(
        notes.iter().map(|n| n.event).collect::<Vec<_>>(),
        vec![Event::Renotify]
    );

    // Back to 2 %: resolved.
    validations(
        &store,
        later + 3 * HOUR,
        1,
        0,
        100,
        0.02,
        "gpt-4o-mini-2025-04-14",
    )
    .await;
    let notes = ev.tick(later + 3 * HOUR).await;
    assert_eq!(
        notes.iter().map(|n| n.event).collect::<Vec<_>>(),
        vec![Event::Resolved]
    );

    // The webhook saw exactly that, once each.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.events(), vec!["firing", "renotify", "resolved"]);
    let history: Vec<String> = store
        .reader()
        .query("SELECT event FROM loupe.alert_events ORDER BY time")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(history, vec!["firing", "renotify", "resolved"]);
    drop(ev);
    close(store).await;
}

#[tokio::test]
async fn a_handful_of_failures_pages_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::migrated_store(&dir).await);
    let now = now_s();
    validations(&store, now, 24 * 7, 1, 100, 0.02, "m1").await;
    validations(&store, now, 1, 0, 8, 0.75, "m2").await;
    let (mut ev, _) = Evaluator::new(spike_only(vec![]), Arc::clone(&store)).unwrap();
    assert!(ev.tick(now).await.is_empty());
    drop(ev);
    close(store).await;
}

#[tokio::test]
async fn a_restart_neither_renotifies_nor_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::migrated_store(&dir).await);
    let now = now_s();
    validations(&store, now, 24 * 7, 1, 100, 0.02, "m1").await;
    validations(&store, now, 1, 0, 100, 0.30, "m1").await;
    let (mut first, _) = Evaluator::new(spike_only(vec![]), Arc::clone(&store)).unwrap();
    assert_eq!(first.tick(now).await.len(), 1);
    drop(first);
    // A new evaluator (a restarted process) takes over after the old heartbeat ages out.
    let (mut second, handle) = Evaluator::new(spike_only(vec![]), Arc::clone(&store)).unwrap();
    let t = now + 600;
    assert!(
        second.tick(t).await.is_empty(),
        "still firing: no new notification"
    );
    assert_eq!(handle.firing().len(), 1, "the firing alert was restored");
    drop(second);
    close(store).await;
}

fn llm_span(
    tenant: &str,
    trace: &str,
    span: u64,
    t: u64,
    model: &str,
    status: PriceStatus,
    cost: &str,
    tokens: u64,
) -> SpanRow {
    let mut s = CanonicalSpan {
        tenant_id: tenant.into(),
        trace_id: trace.into(),
        span_id: format!("{span:016x}"),
        start_time_unix_nano: t * 1_000_000_000,
        end_time_unix_nano: t * 1_000_000_000 + 1,
        operation: Operation::Chat,
        provider: "openai".into(),
        request_model: model.into(),
        counted: true,
        price_status: status,
        ..Default::default()
    };
    s.usage.input = Some(tokens);
    s.usage.output = Some(0);
    s.cost.total = cost.parse().unwrap();
    s.cost.currency = "USD".into();
    SpanRow::from_canonical(&s, Retention::default(), 0)
}

async fn insert(store: &Store, rows: &[SpanRow]) {
    let mut ins = store.insert::<SpanRow>(tables::SPANS, None).await.unwrap();
    for r in rows {
        ins.write(r).await.unwrap();
    }
    ins.end().await.unwrap();
}

#[tokio::test]
async fn budgets_unpriced_models_and_runaway_traces_fire_and_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::migrated_store(&dir).await);
    let now = now_s();
    let mut cfg = AlertsConfig {
        renotify_secs: 100 * HOUR,
        ..Default::default()
    };
    cfg.budgets = BTreeMap::from([("acme".to_string(), "10".parse().unwrap())]);
    cfg.rules = vec![
        RuleConfig {
            name: "budget".into(),
            severity: Severity::Warning,
            tenants: None,
            kind: RuleKind::Budget {
                warning: 0.5,
                critical: 1.0,
            },
        },
        RuleConfig {
            name: "unpriced".into(),
            severity: Severity::Warning,
            tenants: None,
            kind: RuleKind::UnpricedModel { window_minutes: 60 },
        },
        RuleConfig {
            name: "runaway".into(),
            severity: Severity::Critical,
            tenants: None,
            kind: RuleKind::RunawayTrace {
                window_minutes: 30,
                max_tokens: Some(100_000),
                max_calls: Some(20),
            },
        },
    ];
    let (mut ev, _) = Evaluator::new(cfg, Arc::clone(&store)).unwrap();
    assert!(ev.tick(now).await.is_empty());

    // 6 of 10 dollars this month; an unpriced model; a trace spiralling.
    let this_month = now - 60;
    let mut rows = vec![
        llm_span(
            "acme",
            &"a".repeat(32),
            1,
            this_month,
            "gpt-4o",
            PriceStatus::Priced,
            "6",
            10,
        ),
        llm_span(
            "initech",
            &"b".repeat(32),
            2,
            this_month,
            "ft-llama",
            PriceStatus::UnpricedModel,
            "0",
            10,
        ),
    ];
    for i in 0..25 {
        rows.push(llm_span(
            "globex",
            &"c".repeat(32),
            100 + i,
            now - 120,
            "gpt-4o-mini",
            PriceStatus::Priced,
            "0.01",
            5_000,
        ));
    }
    insert(&store, &rows).await;
    let notes = ev.tick(now).await;
    let kinds: Vec<(String, Severity)> = notes
        .iter()
        .map(|n| (n.observation.kind.clone(), n.observation.severity))
        .collect();
    assert!(
        kinds.contains(&("budget".into(), Severity::Warning)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("unpriced_model".into(), Severity::Warning)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("runaway_trace".into(), Severity::Critical)),
        "{kinds:?}"
    );

    // Over budget: the same alert escalates to critical.
    insert(
        &store,
        &[llm_span(
            "acme",
            &"d".repeat(32),
            3,
            this_month,
            "gpt-4o",
            PriceStatus::Priced,
            "5",
            10,
        )],
    )
    .await;
    let notes = ev.tick(now + 1).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        (notes[0].event, notes[0].observation.severity),
        (Event::Firing, Severity::Critical)
    );

    // Two hours later the unpriced calls and the runaway trace left their windows.
    let notes = ev.tick(now + 2 * HOUR).await;
    let resolved: Vec<&str> = notes
        .iter()
        .filter(|n| n.event == Event::Resolved)
        .map(|n| n.observation.kind.as_str())
        .collect();
    assert!(
        resolved.contains(&"unpriced_model") && resolved.contains(&"runaway_trace"),
        "{resolved:?}"
    );
    drop(ev);
    close(store).await;
}

#[tokio::test]
async fn failing_webhooks_are_retried_and_never_stall_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::migrated_store(&dir).await);
    let flaky = Receiver {
        fail_first: Arc::new(Mutex::new(2)),
        ..Default::default()
    };
    let flaky_url = flaky.clone().start().await;
    let slow = Receiver {
        delay: Duration::from_secs(5),
        ..Default::default()
    };
    let slow_url = slow.clone().start().await;
    let now = now_s();
    validations(&store, now, 24 * 7, 1, 100, 0.02, "m1").await;
    validations(&store, now, 1, 0, 100, 0.30, "m1").await;
    let mut hooks = vec![webhook(flaky_url, 2000), webhook(slow_url, 200)];
    hooks[1].name = "slow".into();
    hooks[1].max_attempts = 2;
    let (mut ev, handle) = Evaluator::new(spike_only(hooks), Arc::clone(&store)).unwrap();
    let t = std::time::Instant::now();
    assert_eq!(ev.tick(now).await.len(), 1);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "evaluation does not wait for webhooks: {:?}",
        t.elapsed()
    );
    // Retries: 2 failures then success (0.5 s + 1 s of backoff).
    for _ in 0..50 {
        if !flaky.events().is_empty()
            && handle
                .metrics()
                .contains("webhook=\"slow\",result=\"failed\"} 1")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(flaky.events(), vec!["firing"]);
    let m = handle.metrics();
    assert!(
        m.contains("loupe_alert_deliveries_total{webhook=\"test\",result=\"ok\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("loupe_alert_deliveries_total{webhook=\"slow\",result=\"failed\"} 1"),
        "{m}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows: Vec<(String, bool, u8)> = store
        .reader()
        .query("SELECT webhook, ok, attempts FROM loupe.alert_deliveries ORDER BY webhook")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            ("slow".to_string(), false, 2),
            ("test".to_string(), true, 3)
        ]
    );
    drop(ev);
    close(store).await;
}
