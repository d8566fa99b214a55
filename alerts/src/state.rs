//! Alert state: which alerts are firing, and what each evaluation round must
//! notify. Pure; the caller supplies the time.
//!
//! Invariants:
//! - An alert notifies once when it starts firing, again every `renotify`
//!   while it keeps firing, once more when its severity changes, and once when
//!   it resolves. Nothing else produces a notification.
//! - An alert resolves only when its rule was evaluated successfully and no
//!   longer reports it; a rule whose queries failed keeps its alerts as they
//!   were (a store outage is not a recovery).
//! - State is rebuilt after a restart from the stored history
//!   ([`Tracker::restore`]), so a restart neither re-notifies nor forgets.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// Identity of one alert: a rule, a tenant, and what in it (a model and
/// validation name, a trace id, ...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertKey {
    pub rule: String,
    pub tenant: String,
    pub subject: String,
}

/// What a rule found for one key in one round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    pub key: AlertKey,
    pub kind: String,
    pub severity: Severity,
    /// One human sentence: what is wrong, with the numbers.
    pub summary: String,
    /// The measured value and the threshold it crossed.
    pub value: f64,
    pub threshold: f64,
    /// Dashboard path that explains it (drift chart, trace, cost page).
    pub link: String,
}

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Firing,
    Renotify,
    Resolved,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Firing => "firing",
            Event::Renotify => "renotify",
            Event::Resolved => "resolved",
        }
    }
}

/// One thing to deliver and record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub event: Event,
    pub observation: Observation,
    /// Unix seconds the alert started firing.
    pub since: u64,
    /// Unix seconds of this notification.
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Active {
    observation: Observation,
    since: u64,
    last_notified: u64,
}

/// The firing alerts between rounds.
#[derive(Debug, Clone)]
pub struct Tracker {
    active: BTreeMap<AlertKey, Active>,
    renotify: Duration,
}

/// An alert that was firing when the process stopped (from history).
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    pub observation: Observation,
    pub since: u64,
    pub last_notified: u64,
}

impl Tracker {
    pub fn new(renotify: Duration) -> Self {
        Self {
            active: BTreeMap::new(),
            renotify,
        }
    }

    pub fn restore(&mut self, firing: Vec<Restored>) {
        for r in firing {
            self.active.insert(
                r.observation.key.clone(),
                Active {
                    observation: r.observation,
                    since: r.since,
                    last_notified: r.last_notified,
                },
            );
        }
    }

    /// Currently firing alerts, in key order.
    pub fn firing(&self) -> impl Iterator<Item = (&Observation, u64)> {
        self.active.values().map(|a| (&a.observation, a.since))
    }

    /// Applies one round. `evaluated` names the rules whose evaluation
    /// succeeded; `found` holds what they report as firing now.
    pub fn round(
        &mut self,
        now: u64,
        evaluated: &BTreeSet<String>,
        found: Vec<Observation>,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for obs in found {
            seen.insert(obs.key.clone());
            match self.active.get_mut(&obs.key) {
                None => {
                    out.push(Notification {
                        event: Event::Firing,
                        observation: obs.clone(),
                        since: now,
                        at: now,
                    });
                    self.active.insert(
                        obs.key.clone(),
                        Active {
                            observation: obs,
                            since: now,
                            last_notified: now,
                        },
                    );
                }
                Some(a) => {
                    let escalated = obs.severity != a.observation.severity;
                    let due = now.saturating_sub(a.last_notified) >= self.renotify.as_secs();
                    a.observation = obs;
                    if escalated || due {
                        a.last_notified = now;
                        out.push(Notification {
                            event: if escalated {
                                Event::Firing
                            } else {
                                Event::Renotify
                            },
                            observation: a.observation.clone(),
                            since: a.since,
                            at: now,
                        });
                    }
                }
            }
        }
        let resolved: Vec<AlertKey> = self
            .active
            .keys()
            .filter(|k| evaluated.contains(&k.rule) && !seen.contains(*k))
            .cloned()
            .collect();
        for key in resolved {
            if let Some(a) = self.active.remove(&key) {
                out.push(Notification {
                    event: Event::Resolved,
                    observation: a.observation,
                    since: a.since,
                    at: now,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn obs(rule: &str, subject: &str, severity: Severity) -> Observation {
        Observation {
            key: AlertKey {
                rule: rule.into(),
                tenant: "acme".into(),
                subject: subject.into(),
            },
            kind: "test".into(),
            severity,
            summary: format!("{rule} {subject}"),
            value: 1.0,
            threshold: 0.5,
            link: "/".into(),
        }
    }

    fn rules(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fires_once_renotifies_then_resolves() {
        let mut t = Tracker::new(Duration::from_secs(600));
        let r = rules(&["spike"]);
        let n = t.round(0, &r, vec![obs("spike", "m", Severity::Warning)]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].event, Event::Firing);
        assert!(
            t.round(60, &r, vec![obs("spike", "m", Severity::Warning)])
                .is_empty()
        );
        let n = t.round(600, &r, vec![obs("spike", "m", Severity::Warning)]);
        assert_eq!(n[0].event, Event::Renotify);
        assert_eq!(n[0].since, 0);
        let n = t.round(660, &r, vec![]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].event, Event::Resolved);
        assert!(t.round(720, &r, vec![]).is_empty());
    }

    #[test]
    fn severity_change_notifies_at_once() {
        let mut t = Tracker::new(Duration::from_secs(3600));
        let r = rules(&["budget"]);
        t.round(0, &r, vec![obs("budget", "", Severity::Warning)]);
        let n = t.round(60, &r, vec![obs("budget", "", Severity::Critical)]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].event, Event::Firing);
        assert_eq!(n[0].observation.severity, Severity::Critical);
    }

    #[test]
    fn a_failed_rule_keeps_its_alerts() {
        let mut t = Tracker::new(Duration::from_secs(3600));
        t.round(
            0,
            &rules(&["a", "b"]),
            vec![
                obs("a", "x", Severity::Warning),
                obs("b", "y", Severity::Warning),
            ],
        );
        // Rule a could not be evaluated this round: its alert stays; b resolves.
        let n = t.round(60, &rules(&["b"]), vec![]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].observation.key.rule, "b");
        assert_eq!(t.firing().count(), 1);
    }

    #[test]
    fn restored_alerts_do_not_notify_again() {
        let mut t = Tracker::new(Duration::from_secs(3600));
        t.restore(vec![Restored {
            observation: obs("a", "x", Severity::Warning),
            since: 100,
            last_notified: 100,
        }]);
        assert!(
            t.round(200, &rules(&["a"]), vec![obs("a", "x", Severity::Warning)])
                .is_empty()
        );
        let n = t.round(300, &rules(&["a"]), vec![]);
        assert_eq!(n[0].event, Event::Resolved);
        assert_eq!(n[0].since, 100);
    }

    proptest! {
        /// Over any sequence of rounds, every alert's notifications read
        /// firing (renotify|firing)* resolved?, and firing never repeats
        /// without a resolve or a severity change in between.
        #[test]
        fn notification_sequences_are_well_formed(rounds in proptest::collection::vec((any::<bool>(), any::<bool>(), 0u64..2000), 1..60)) {
            let mut t = Tracker::new(Duration::from_secs(500));
            let r = rules(&["a"]);
            let mut now = 0;
            let mut firing = false;
            let mut last_sev = None;
            for (present, critical, dt) in rounds {
                now += dt;
                let sev = if critical { Severity::Critical } else { Severity::Warning };
                let found = if present { vec![obs("a", "x", sev)] } else { vec![] };
                for n in t.round(now, &r, found) {
                    match n.event {
                        Event::Firing => {
                            prop_assert!(!firing || last_sev != Some(n.observation.severity));
                            firing = true;
                            last_sev = Some(n.observation.severity);
                        }
                        Event::Renotify => prop_assert!(firing),
                        Event::Resolved => { prop_assert!(firing); firing = false; last_sev = None; }
                    }
                }
                prop_assert_eq!(firing, present);
            }
        }
    }
}
