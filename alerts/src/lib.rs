//! Alerts: a periodic evaluator over the rollups ([`eval`]), the state that
//! turns findings into notify-once / renotify / resolved ([`state`]), webhook
//! delivery that never blocks ([`deliver`]), history in ClickHouse
//! ([`history`]) and the current state as Prometheus text ([`AlertsHandle::metrics`]).
//!
//! Only one instance evaluates at a time (see [`history::heartbeat`]); the
//! others keep heartbeating and take over when the leader stops.

pub mod config;
pub mod deliver;
pub mod detect;
pub mod eval;
pub mod history;
pub mod source;
pub mod state;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use store::Store;

pub use config::AlertsConfig;
use deliver::{DeliveryStats, Outbox};
use source::StoreSource;
use state::{Observation, Tracker};

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
}

/// Shared view of the evaluator, for `/metrics` and tests.
#[derive(Default)]
struct Shared {
    firing: Mutex<Vec<(Observation, u64)>>,
    rounds: AtomicU64,
    rule_failures: Mutex<BTreeMap<String, u64>>,
    notifications: Mutex<BTreeMap<&'static str, u64>>,
    leader: AtomicU64,
}

/// A running evaluator.
#[derive(Clone)]
pub struct AlertsHandle {
    shared: Arc<Shared>,
    stats: Arc<DeliveryStats>,
    webhooks: Arc<Vec<String>>,
}

/// The evaluator's loop state.
pub struct Evaluator {
    cfg: AlertsConfig,
    store: Arc<Store>,
    tracker: Tracker,
    restored: bool,
    outbox: Outbox,
    shared: Arc<Shared>,
    instance: String,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Evaluator {
    /// Validates the configuration and starts the delivery task.
    pub fn new(cfg: AlertsConfig, store: Arc<Store>) -> Result<(Self, AlertsHandle), AlertsError> {
        cfg.validate()?;
        let (outbox, stats, _task) = deliver::start(
            cfg.webhooks.clone(),
            cfg.dashboard_url.clone(),
            Arc::clone(&store),
        );
        let shared = Arc::new(Shared::default());
        let handle = AlertsHandle {
            shared: Arc::clone(&shared),
            stats,
            webhooks: Arc::new(cfg.webhooks.iter().map(|w| w.name.clone()).collect()),
        };
        let instance = format!("{:016x}", rand::random::<u64>());
        Ok((
            Self {
                tracker: Tracker::new(Duration::from_secs(cfg.renotify_secs.max(1))),
                cfg,
                store,
                restored: false,
                outbox,
                shared,
                instance,
            },
            handle,
        ))
    }

    /// One round at `now` (Unix seconds): heartbeat, and if this instance
    /// leads, evaluate, record and queue notifications. Returns them.
    pub async fn tick(&mut self, now: u64) -> Vec<state::Notification> {
        let live_ms = i64::try_from(self.cfg.interval_secs.max(1) * 3000).unwrap_or(i64::MAX);
        let now_ms = i64::try_from(now).unwrap_or(i64::MAX).saturating_mul(1000);
        match history::heartbeat(&self.store, &self.instance, now_ms, live_ms).await {
            Ok(true) => self.shared.leader.store(1, Ordering::Relaxed),
            Ok(false) => {
                self.shared.leader.store(0, Ordering::Relaxed);
                self.restored = false;
                return Vec::new();
            }
            Err(e) => {
                tracing::warn!(error = %e, "alert heartbeat failed; skipping this round");
                return Vec::new();
            }
        }
        if !self.restored {
            match history::restore(&self.store).await {
                Ok(firing) => {
                    self.tracker = Tracker::new(Duration::from_secs(self.cfg.renotify_secs.max(1)));
                    self.tracker.restore(firing);
                    self.restored = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot restore alert state; skipping this round");
                    return Vec::new();
                }
            }
        }
        let source = StoreSource { store: &self.store };
        let round =
            eval::evaluate(&self.cfg, &source, i64::try_from(now).unwrap_or(i64::MAX)).await;
        for (rule, err) in &round.failed {
            tracing::warn!(rule = %rule, error = %err, "alert rule could not be evaluated");
            if let Ok(mut f) = self.shared.rule_failures.lock() {
                *f.entry(rule.clone()).or_default() += 1;
            }
        }
        let notes = self.tracker.round(now, &round.evaluated, round.found);
        if let Err(e) = history::record(&self.store, &notes).await {
            tracing::warn!(error = %e, "cannot record alert history");
        }
        for n in &notes {
            tracing::info!(rule = %n.observation.key.rule, tenant = %n.observation.key.tenant, event = n.event.as_str(), "{}", n.observation.summary);
            if let Ok(mut c) = self.shared.notifications.lock() {
                *c.entry(n.event.as_str()).or_default() += 1;
            }
            self.outbox.offer(n.clone());
        }
        if let Ok(mut f) = self.shared.firing.lock() {
            *f = self.tracker.firing().map(|(o, s)| (o.clone(), s)).collect();
        }
        self.shared.rounds.fetch_add(1, Ordering::Relaxed);
        notes
    }

    /// Runs rounds every `interval_secs` until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()> + Send) {
        let mut interval =
            tokio::time::interval(Duration::from_secs(self.cfg.interval_secs.max(1)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = interval.tick() => { self.tick(now_s()).await; }
            }
        }
    }
}

impl AlertsHandle {
    /// Firing alerts and the Unix second each started.
    pub fn firing(&self) -> Vec<(Observation, u64)> {
        self.shared
            .firing
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    /// Alert state in Prometheus text format.
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP loupe_alert_firing An alert that is firing now (1)."
        );
        let _ = writeln!(out, "# TYPE loupe_alert_firing gauge");
        for (o, _since) in self.firing() {
            let _ = writeln!(
                out,
                "loupe_alert_firing{{rule=\"{}\",kind=\"{}\",tenant=\"{}\",subject=\"{}\",severity=\"{}\"}} 1",
                esc(&o.key.rule),
                esc(&o.kind),
                esc(&o.key.tenant),
                esc(&o.key.subject),
                o.severity.as_str()
            );
        }
        let _ = writeln!(out, "# TYPE loupe_alert_evaluator_leader gauge");
        let _ = writeln!(
            out,
            "loupe_alert_evaluator_leader {}",
            self.shared.leader.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE loupe_alert_rounds_total counter");
        let _ = writeln!(
            out,
            "loupe_alert_rounds_total {}",
            self.shared.rounds.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE loupe_alert_rule_failures_total counter");
        if let Ok(f) = self.shared.rule_failures.lock() {
            for (rule, n) in f.iter() {
                let _ = writeln!(
                    out,
                    "loupe_alert_rule_failures_total{{rule=\"{}\"}} {n}",
                    esc(rule)
                );
            }
        }
        let _ = writeln!(out, "# TYPE loupe_alert_notifications_total counter");
        if let Ok(c) = self.shared.notifications.lock() {
            for (event, n) in c.iter() {
                let _ = writeln!(
                    out,
                    "loupe_alert_notifications_total{{event=\"{event}\"}} {n}"
                );
            }
        }
        let _ = writeln!(out, "# TYPE loupe_alert_deliveries_total counter");
        for (i, name) in self.webhooks.iter().enumerate() {
            let ok = self
                .stats
                .delivered
                .get(i)
                .map(|c| c.load(Ordering::Relaxed))
                .unwrap_or(0);
            let failed = self
                .stats
                .failed
                .get(i)
                .map(|c| c.load(Ordering::Relaxed))
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "loupe_alert_deliveries_total{{webhook=\"{}\",result=\"ok\"}} {ok}",
                esc(name)
            );
            let _ = writeln!(
                out,
                "loupe_alert_deliveries_total{{webhook=\"{}\",result=\"failed\"}} {failed}",
                esc(name)
            );
        }
        let _ = writeln!(
            out,
            "# TYPE loupe_alert_notifications_dropped_total counter"
        );
        let _ = writeln!(
            out,
            "loupe_alert_notifications_dropped_total {}",
            self.stats.dropped.load(Ordering::Relaxed)
        );
        out
    }
}

/// Escapes a Prometheus label value.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
