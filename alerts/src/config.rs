//! Alert configuration: the `[alerts]` section of `loupe.toml` (rules,
//! webhooks, intervals) plus the tenants' budgets, which the binary passes in
//! from the shared `[budgets]` section.
//!
//! With no rules configured, a default set runs (validation spikes, unpriced
//! models, runaway traces; budgets when any budget is set), so alerts work out
//! of the box; configuring `rules` replaces the defaults.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::detect::SpikeParams;
use crate::state::Severity;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Seconds between evaluation rounds.
    pub interval_secs: u64,
    /// Seconds between reminders while an alert keeps firing.
    pub renotify_secs: u64,
    /// Base URL of the dashboard, for links in notifications.
    pub dashboard_url: String,
    pub webhooks: Vec<WebhookConfig>,
    pub rules: Vec<RuleConfig>,
    /// Monthly budget per tenant (filled from `[budgets]` by the binary).
    #[serde(skip)]
    pub budgets: BTreeMap<String, Decimal>,
    /// Currency of the budgets.
    #[serde(skip)]
    pub currency: String,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            interval_secs: 60,
            renotify_secs: 4 * 3600,
            dashboard_url: "http://127.0.0.1:3000".to_string(),
            webhooks: Vec::new(),
            rules: Vec::new(),
            budgets: BTreeMap::new(),
            currency: "USD".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The notification as a JSON object.
    #[default]
    Json,
    /// `{"text": "..."}`, which Slack (and Mattermost, Teams workflows...) accept.
    Slack,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_attempts() -> u32 {
    5
}

/// `deny_unknown_fields` sits on [`RuleKind`]: serde cannot combine it with
/// `flatten` here, and the kind sees every field the rule does not take.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RuleConfig {
    pub name: String,
    #[serde(default = "default_severity")]
    pub severity: Severity,
    /// Only these tenants; all when absent.
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
    #[serde(flatten)]
    pub kind: RuleKind,
}

fn default_severity() -> Severity {
    Severity::Warning
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleKind {
    ValidationFailureSpike {
        #[serde(default = "spike_window")]
        window_minutes: u64,
        #[serde(default = "baseline_days")]
        baseline_days: u64,
        #[serde(default = "min_samples")]
        min_samples: u64,
        #[serde(default = "alpha")]
        alpha: f64,
        #[serde(default = "min_ratio")]
        min_ratio: f64,
        #[serde(default = "min_increase")]
        min_increase: f64,
        #[serde(default)]
        ceiling: Option<f64>,
        /// Only this evaluation name (e.g. `json_schema`); all when absent.
        #[serde(default)]
        evaluation: Option<String>,
    },
    Budget {
        #[serde(default = "warning_fraction")]
        warning: f64,
        #[serde(default = "critical_fraction")]
        critical: f64,
    },
    UnpricedModel {
        #[serde(default = "spike_window")]
        window_minutes: u64,
    },
    RunawayTrace {
        #[serde(default = "runaway_window")]
        window_minutes: u64,
        #[serde(default)]
        max_tokens: Option<u64>,
        #[serde(default)]
        max_calls: Option<u64>,
    },
}

fn spike_window() -> u64 {
    60
}
fn baseline_days() -> u64 {
    7
}
fn min_samples() -> u64 {
    SpikeParams::default().min_samples
}
fn alpha() -> f64 {
    SpikeParams::default().alpha
}
fn min_ratio() -> f64 {
    SpikeParams::default().min_ratio
}
fn min_increase() -> f64 {
    SpikeParams::default().min_increase
}
fn warning_fraction() -> f64 {
    0.8
}
fn critical_fraction() -> f64 {
    1.0
}
fn runaway_window() -> u64 {
    30
}

/// Why the alert configuration is unusable.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("alert rule {0:?} is defined twice")]
    DuplicateRule(String),
    #[error("alert rule {rule:?}: {reason}")]
    Invalid { rule: String, reason: String },
    #[error("webhook {name:?}: {reason}")]
    Webhook { name: String, reason: String },
}

impl AlertsConfig {
    /// The rules that run: the configured ones, or the defaults.
    pub fn effective_rules(&self) -> Vec<RuleConfig> {
        if !self.rules.is_empty() {
            return self.rules.clone();
        }
        let mut rules = vec![
            RuleConfig {
                name: "validation-failure-spike".into(),
                severity: Severity::Warning,
                tenants: None,
                kind: RuleKind::ValidationFailureSpike {
                    window_minutes: spike_window(),
                    baseline_days: baseline_days(),
                    min_samples: min_samples(),
                    alpha: alpha(),
                    min_ratio: min_ratio(),
                    min_increase: min_increase(),
                    ceiling: None,
                    evaluation: None,
                },
            },
            RuleConfig {
                name: "unpriced-model".into(),
                severity: Severity::Warning,
                tenants: None,
                kind: RuleKind::UnpricedModel {
                    window_minutes: spike_window(),
                },
            },
            RuleConfig {
                name: "runaway-trace".into(),
                severity: Severity::Warning,
                tenants: None,
                kind: RuleKind::RunawayTrace {
                    window_minutes: runaway_window(),
                    max_tokens: Some(500_000),
                    max_calls: Some(100),
                },
            },
        ];
        if !self.budgets.is_empty() {
            rules.push(RuleConfig {
                name: "budget".into(),
                severity: Severity::Warning,
                tenants: None,
                kind: RuleKind::Budget {
                    warning: warning_fraction(),
                    critical: critical_fraction(),
                },
            });
        }
        rules
    }

    /// Checks what serde cannot: names unique, numbers in range, URLs usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::BTreeSet::new();
        for r in self.effective_rules() {
            if !names.insert(r.name.clone()) {
                return Err(ConfigError::DuplicateRule(r.name));
            }
            let bad = |reason: &str| {
                Err(ConfigError::Invalid {
                    rule: r.name.clone(),
                    reason: reason.to_string(),
                })
            };
            match &r.kind {
                RuleKind::ValidationFailureSpike {
                    window_minutes,
                    baseline_days,
                    alpha,
                    min_ratio,
                    ceiling,
                    ..
                } => {
                    if *window_minutes == 0 || *baseline_days == 0 {
                        return bad("window_minutes and baseline_days must be positive");
                    }
                    if !(*alpha > 0.0 && *alpha < 1.0) {
                        return bad("alpha must be between 0 and 1");
                    }
                    if *min_ratio < 1.0 {
                        return bad("min_ratio must be at least 1");
                    }
                    if ceiling.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
                        return bad("ceiling is a rate between 0 and 1");
                    }
                }
                RuleKind::Budget { warning, critical } => {
                    if !(*warning > 0.0 && warning <= critical) {
                        return bad("need 0 < warning <= critical (fractions of the budget)");
                    }
                }
                RuleKind::UnpricedModel { window_minutes } => {
                    if *window_minutes == 0 {
                        return bad("window_minutes must be positive");
                    }
                }
                RuleKind::RunawayTrace {
                    window_minutes,
                    max_tokens,
                    max_calls,
                } => {
                    if *window_minutes == 0 || (max_tokens.is_none() && max_calls.is_none()) {
                        return bad("needs window_minutes and max_tokens or max_calls");
                    }
                }
            }
        }
        for w in &self.webhooks {
            let ok = (w.url.starts_with("http://") || w.url.starts_with("https://"))
                && w.url.parse::<hyper::Uri>().is_ok();
            if !ok {
                return Err(ConfigError::Webhook {
                    name: w.name.clone(),
                    reason: format!("{:?} is not an http(s) URL", w.url),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_from_toml() {
        let cfg: AlertsConfig = toml::from_str(
            r#"
            interval_secs = 30
            [[webhooks]]
            name = "oncall"
            url = "https://hooks.example.com/x"
            format = "slack"
            [[rules]]
            name = "spike"
            type = "validation_failure_spike"
            severity = "critical"
            tenants = ["acme"]
            ceiling = 0.25
            [[rules]]
            name = "runaway"
            type = "runaway_trace"
            max_calls = 40
            "#,
        )
        .unwrap();
        assert_eq!(cfg.interval_secs, 30);
        assert_eq!(cfg.webhooks[0].format, WebhookFormat::Slack);
        assert_eq!(cfg.rules.len(), 2);
        assert_eq!(cfg.rules[0].severity, Severity::Critical);
        assert!(
            matches!(cfg.rules[0].kind, RuleKind::ValidationFailureSpike { ceiling: Some(c), window_minutes: 60, .. } if c == 0.25)
        );
        cfg.validate().unwrap();
    }

    #[test]
    fn defaults_apply_without_rules_and_budget_needs_budgets() {
        let mut cfg = AlertsConfig::default();
        let names: Vec<String> = cfg.effective_rules().into_iter().map(|r| r.name).collect();
        assert!(names.contains(&"validation-failure-spike".to_string()));
        assert!(!names.contains(&"budget".to_string()));
        cfg.budgets.insert("acme".into(), Decimal::from(100));
        assert!(cfg.effective_rules().iter().any(|r| r.name == "budget"));
        cfg.validate().unwrap();
    }

    #[test]
    fn bad_rules_are_named() {
        let cfg: AlertsConfig = toml::from_str(
            "[[rules]]\nname = \"b\"\ntype = \"budget\"\nwarning = 1.5\ncritical = 1.0\n",
        )
        .unwrap();
        assert_eq!(
            cfg.validate(),
            Err(ConfigError::Invalid {
                rule: "b".into(),
                reason: "need 0 < warning <= critical (fractions of the budget)".into()
            })
        );
        let err = toml::from_str::<AlertsConfig>("[[rules]]\nname = \"x\"\ntype = \"nope\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("nope"));
        let err = toml::from_str::<AlertsConfig>(
            "[[rules]]\nname = \"x\"\ntype = \"budget\"\nwarnign = 0.5\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("warnign"), "{err}");
        let cfg: AlertsConfig =
            toml::from_str("[[webhooks]]\nname = \"w\"\nurl = \"ftp://x\"\n").unwrap();
        assert!(matches!(cfg.validate(), Err(ConfigError::Webhook { .. })));
    }
}
