//! The alerts page: what the alert evaluator (the `alerts` crate) decided,
//! read from `loupe.alert_events`, and whether an evaluator is alive.
//!
//! Invariants: the page never claims "all clear" when nothing evaluates: with
//! no heartbeat it says alerts are not running; "firing" means the newest
//! event of a (rule, tenant, subject) is not `resolved`; links stored with an
//! event are used only when they are paths on this dashboard.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::civil;
use crate::error::DashboardError;
use crate::query::{AlertActivity, AlertEventRow, Queries, Scope};

/// Events shown in the history.
pub const HISTORY_LIMIT: u32 = 200;
/// Days of history read.
pub const HISTORY_DAYS: i64 = 30;
/// A heartbeat older than this means no evaluator is running.
pub const LIVE_WINDOW_NS: i64 = 5 * 60 * 1_000_000_000;

#[derive(Debug, Clone, Serialize)]
pub struct AlertLine {
    pub time: String,
    pub rule: String,
    pub kind: String,
    pub tenant: String,
    pub subject: String,
    pub event: String,
    pub severity: String,
    pub summary: String,
    pub value: f64,
    pub threshold: f64,
    /// A dashboard path to look at, when the event named a safe one.
    pub link: Option<String>,
    pub since: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertsView {
    /// The filters applied (empty: all).
    pub filter: AlertFilter,
    /// Rules and tenants seen in the window, for the filter choices.
    pub rules: Vec<String>,
    pub tenants: Vec<String>,
    /// An evaluator heartbeat was seen in the last five minutes.
    pub evaluator_running: bool,
    pub last_heartbeat: Option<String>,
    pub firing: Vec<AlertLine>,
    pub history: Vec<AlertLine>,
    pub history_days: i64,
}

/// Filters of the alerts page: `rule`, `tenant`, `state` (firing | resolved).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlertFilter {
    pub rule: String,
    pub tenant: String,
    pub state: String,
}

pub const PARAMS: &[&str] = &["rule", "tenant", "state"];
pub const STATES: &[&str] = &["firing", "resolved"];

impl AlertFilter {
    pub fn parse(p: &crate::params::Params) -> Result<Self, DashboardError> {
        Ok(Self {
            rule: p.string("rule").unwrap_or_default(),
            tenant: p.string("tenant").unwrap_or_default(),
            state: p.choice("state", STATES)?.unwrap_or_default().to_string(),
        })
    }

    fn keeps(&self, l: &AlertLine) -> bool {
        (self.rule.is_empty() || l.rule == self.rule)
            && (self.tenant.is_empty() || l.tenant == self.tenant)
    }
}

pub async fn load(
    q: &dyn Queries,
    scope: &Scope,
    filter: AlertFilter,
    now_ns: i64,
) -> Result<AlertsView, DashboardError> {
    let a = q
        .alert_activity(scope, now_ns - HISTORY_DAYS * civil::DAY_NS, HISTORY_LIMIT)
        .await?;
    Ok(filtered(shape(&a, now_ns), filter))
}

/// Applies the page's filters (the choices keep every rule and tenant seen).
pub fn filtered(mut v: AlertsView, f: AlertFilter) -> AlertsView {
    let mut rules: Vec<String> = v.history.iter().map(|l| l.rule.clone()).collect();
    let mut tenants: Vec<String> = v.history.iter().map(|l| l.tenant.clone()).collect();
    rules.sort();
    rules.dedup();
    tenants.sort();
    tenants.dedup();
    v.firing.retain(|l| f.keeps(l));
    v.history.retain(|l| f.keeps(l));
    match f.state.as_str() {
        "firing" => v.history.retain(|l| l.event != "resolved"),
        "resolved" => {
            v.firing.clear();
            v.history.retain(|l| l.event == "resolved");
        }
        _ => {}
    }
    v.rules = rules;
    v.tenants = tenants;
    v.filter = f;
    v
}

/// Keeps only same-origin paths (`/cost?…`), never `//host` or `javascript:`.
fn safe_link(link: &str) -> Option<String> {
    (link.starts_with('/') && !link.starts_with("//") && !link.contains('\\'))
        .then(|| link.to_string())
}

fn line(e: &AlertEventRow) -> AlertLine {
    AlertLine {
        time: civil::format_ns(e.time.saturating_mul(1_000_000)),
        rule: e.rule.clone(),
        kind: e.kind.clone(),
        tenant: e.tenant_id.clone(),
        subject: e.subject.clone(),
        event: e.event.clone(),
        severity: e.severity.clone(),
        summary: e.summary.clone(),
        value: e.value,
        threshold: e.threshold,
        link: safe_link(&e.link),
        since: civil::format_ns(i64::from(e.since) * 1_000_000_000),
    }
}

pub fn shape(a: &AlertActivity, now_ns: i64) -> AlertsView {
    let mut latest: BTreeMap<(&str, &str, &str), &AlertEventRow> = BTreeMap::new();
    for e in &a.events {
        let k = (e.rule.as_str(), e.tenant_id.as_str(), e.subject.as_str());
        match latest.get(&k) {
            Some(prev) if prev.time >= e.time => {}
            _ => {
                latest.insert(k, e);
            }
        }
    }
    let mut firing: Vec<&AlertEventRow> = latest
        .into_values()
        .filter(|e| e.event != "resolved")
        .collect();
    firing.sort_by_key(|e| std::cmp::Reverse(e.time));
    AlertsView {
        filter: AlertFilter::default(),
        rules: Vec::new(),
        tenants: Vec::new(),
        evaluator_running: a
            .last_heartbeat_ns
            .is_some_and(|t| now_ns - t <= LIVE_WINDOW_NS),
        last_heartbeat: a.last_heartbeat_ns.map(civil::format_ns),
        firing: firing.into_iter().map(line).collect(),
        history: a.events.iter().map(line).collect(),
        history_days: HISTORY_DAYS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: i64, subject: &str, event: &str, link: &str) -> AlertEventRow {
        AlertEventRow {
            time: t,
            rule: "validation-spike".into(),
            kind: "validation".into(),
            tenant_id: "acme".into(),
            subject: subject.into(),
            event: event.into(),
            severity: "critical".into(),
            summary: "s".into(),
            value: 0.4,
            threshold: 0.05,
            link: link.into(),
            since: 0,
        }
    }

    #[test]
    fn firing_is_the_latest_unresolved_event_and_links_stay_local() {
        let a = AlertActivity {
            last_heartbeat_ns: Some(1_000),
            events: vec![
                ev(30, "gpt-4o", "renotify", "/drift?tenant=acme"),
                ev(20, "claude", "resolved", "javascript:alert(1)"),
                ev(10, "claude", "firing", "//evil.example/"),
                ev(5, "gpt-4o", "firing", "/drift"),
            ],
        };
        let v = shape(&a, 2_000);
        assert!(v.evaluator_running);
        assert_eq!(v.firing.len(), 1);
        assert_eq!(v.firing[0].subject, "gpt-4o");
        assert_eq!(v.firing[0].link.as_deref(), Some("/drift?tenant=acme"));
        assert_eq!(v.history.len(), 4);
        assert!(v.history[1].link.is_none() && v.history[2].link.is_none());
        let stale = shape(
            &AlertActivity {
                last_heartbeat_ns: Some(0),
                events: vec![],
            },
            LIVE_WINDOW_NS + 1,
        );
        assert!(!stale.evaluator_running);
    }
}
