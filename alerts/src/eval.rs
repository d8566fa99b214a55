//! One evaluation round: every rule reads its [`Source`] and reports what is
//! firing as [`Observation`]s. No state and no delivery here (see `state` and
//! `deliver`); a rule whose query fails is reported as not evaluated, so its
//! alerts neither fire nor resolve on an outage.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::config::{AlertsConfig, RuleConfig, RuleKind};
use crate::detect::{Counts, SpikeParams, spike};
use crate::source::{SeriesRow, Source};
use crate::state::{AlertKey, Observation, Severity};

const NS: i64 = 1_000_000_000;

/// The outcome of one round.
#[derive(Debug, Default)]
pub struct Round {
    pub evaluated: BTreeSet<String>,
    pub found: Vec<Observation>,
    /// Rules that could not be evaluated, with the reason (logged and counted).
    pub failed: Vec<(String, String)>,
}

pub async fn evaluate<S: Source>(cfg: &AlertsConfig, source: &S, now_s: i64) -> Round {
    let mut round = Round::default();
    for rule in cfg.effective_rules() {
        let result = match &rule.kind {
            RuleKind::ValidationFailureSpike { .. } => spike_rule(&rule, source, now_s).await,
            RuleKind::Budget { warning, critical } => {
                budget_rule(&rule, cfg, *warning, *critical, source, now_s).await
            }
            RuleKind::UnpricedModel { window_minutes } => {
                unpriced_rule(&rule, *window_minutes, source, now_s).await
            }
            RuleKind::RunawayTrace {
                window_minutes,
                max_tokens,
                max_calls,
            } => {
                runaway_rule(
                    &rule,
                    *window_minutes,
                    *max_tokens,
                    *max_calls,
                    source,
                    now_s,
                )
                .await
            }
        };
        match result {
            Ok(found) => {
                round.evaluated.insert(rule.name.clone());
                round
                    .found
                    .extend(found.into_iter().filter(|o| in_scope(&rule, &o.key.tenant)));
            }
            Err(e) => round.failed.push((rule.name.clone(), e.to_string())),
        }
    }
    round
}

fn in_scope(rule: &RuleConfig, tenant: &str) -> bool {
    rule.tenants
        .as_ref()
        .is_none_or(|ts| ts.iter().any(|t| t == tenant))
}

fn key(rule: &RuleConfig, tenant: &str, subject: String) -> AlertKey {
    AlertKey {
        rule: rule.name.clone(),
        tenant: tenant.to_string(),
        subject,
    }
}

/// Per (tenant, request model, evaluation): window and baseline counts, and
/// the response models seen in each.
#[derive(Default)]
struct Series {
    window: Counts,
    baseline: Counts,
    window_models: BTreeMap<String, u64>,
    baseline_models: BTreeMap<String, u64>,
}

fn dominant(models: &BTreeMap<String, u64>) -> Option<&str> {
    models
        .iter()
        .max_by_key(|(m, n)| (**n, std::cmp::Reverse((*m).clone())))
        .map(|(m, _)| m.as_str())
}

async fn spike_rule<S: Source>(
    rule: &RuleConfig,
    source: &S,
    now_s: i64,
) -> Result<Vec<Observation>, store::StoreError> {
    let RuleKind::ValidationFailureSpike {
        window_minutes,
        baseline_days,
        min_samples,
        alpha,
        min_ratio,
        min_increase,
        ceiling,
        evaluation,
    } = &rule.kind
    else {
        return Ok(Vec::new());
    };
    let window_start = now_s - (*window_minutes as i64) * 60;
    // The baseline is whole hours that end before the window's hour begins.
    let baseline_end = window_start - window_start.rem_euclid(3600);
    let baseline_start = baseline_end - (*baseline_days as i64) * 86_400;
    let window = source
        .window_series(window_start * NS, now_s * NS, evaluation.as_deref())
        .await?;
    let baseline = source
        .baseline_series(baseline_start, baseline_end, evaluation.as_deref())
        .await?;
    let mut series: BTreeMap<(String, String, String), Series> = BTreeMap::new();
    let mut add = |rows: Vec<SeriesRow>, in_window: bool| {
        for r in rows {
            let s = series
                .entry((r.tenant_id.clone(), r.request_model.clone(), r.name.clone()))
                .or_default();
            let (counts, models) = if in_window {
                (&mut s.window, &mut s.window_models)
            } else {
                (&mut s.baseline, &mut s.baseline_models)
            };
            counts.total += r.total;
            counts.failed += r.failed;
            *models.entry(r.response_model.clone()).or_default() += r.total;
        }
    };
    add(window, true);
    add(baseline, false);
    let params = SpikeParams {
        min_samples: *min_samples,
        alpha: *alpha,
        min_ratio: *min_ratio,
        min_increase: *min_increase,
        ceiling: *ceiling,
    };
    let mut out = Vec::new();
    for ((tenant, model, name), s) in series {
        let v = spike(s.window, s.baseline, &params);
        if !v.firing {
            continue;
        }
        let change = match (dominant(&s.baseline_models), dominant(&s.window_models)) {
            (Some(before), Some(after)) if before != after => {
                format!("; the response model changed from {before} to {after}")
            }
            _ => String::new(),
        };
        let why = if v.over_ceiling {
            format!("above the {:.1}% ceiling", ceiling.unwrap_or(0.0) * 100.0)
        } else {
            format!(
                "against a {:.1}% baseline over {baseline_days} days (p = {:.1e})",
                v.baseline_rate * 100.0,
                v.p_value
            )
        };
        let label = if model.is_empty() {
            "(unknown model)"
        } else {
            model.as_str()
        };
        out.push(Observation {
            key: key(rule, &tenant, format!("{model}|{name}")),
            kind: "validation_failure_spike".into(),
            severity: rule.severity,
            summary: format!(
                "{tenant}: {name} failures on {label} at {:.1}% ({} of {}) in the last {window_minutes} min, {why}{change}",
                v.window_rate * 100.0,
                v.window_failed,
                v.window_total
            ),
            value: v.window_rate,
            threshold: if v.over_ceiling { ceiling.unwrap_or(0.0) } else { v.baseline_rate },
            link: format!(
                "/drift?tenant={}&model={}&validation={}",
                url_encode(&tenant),
                url_encode(&model),
                url_encode(&name)
            ),
        });
    }
    Ok(out)
}

/// Seconds of the month elapsed and the month's length, for `now_s` (UTC).
pub fn month_progress(now_s: i64) -> (i64, i64, i64) {
    use schemas::civil::Day;
    let month = Day::from_unix_ns(now_s.saturating_mul(1_000_000_000)).month_start();
    // Any day 31–32 days past the first is in the next month.
    let next = month.offset(32).month_start();
    let start = i64::from(month.0) * 86_400;
    (start, now_s - start, i64::from(next.0) * 86_400 - start)
}

async fn budget_rule<S: Source>(
    rule: &RuleConfig,
    cfg: &AlertsConfig,
    warning: f64,
    critical: f64,
    source: &S,
    now_s: i64,
) -> Result<Vec<Observation>, store::StoreError> {
    let (month_start, elapsed, length) = month_progress(now_s);
    let spend = source.spend_since(month_start).await?;
    let mut out = Vec::new();
    for (tenant, budget) in &cfg.budgets {
        if *budget <= Decimal::ZERO {
            continue;
        }
        let mtd = spend
            .iter()
            .find(|s| &s.tenant_id == tenant)
            .map(|s| s.cost)
            .unwrap_or(Decimal::ZERO);
        let used = (mtd / budget).to_f64().unwrap_or(0.0);
        let severity = if used >= critical {
            Severity::Critical
        } else if used >= warning {
            Severity::Warning
        } else {
            continue;
        };
        let forecast = if elapsed > 0 {
            mtd * Decimal::from(length) / Decimal::from(elapsed)
        } else {
            mtd
        };
        out.push(Observation {
            key: key(rule, tenant, String::new()),
            kind: "budget".into(),
            severity,
            summary: format!(
                "{tenant}: {} {} spent this month, {:.0}% of the {} {} budget; forecast {} {} by month end",
                mtd.round_dp(2),
                cfg.currency,
                used * 100.0,
                budget.round_dp(2),
                cfg.currency,
                forecast.round_dp(2),
                cfg.currency
            ),
            value: used,
            threshold: if severity == Severity::Critical { critical } else { warning },
            link: format!("/cost?tenant={}", url_encode(tenant)),
        });
    }
    Ok(out)
}

async fn unpriced_rule<S: Source>(
    rule: &RuleConfig,
    window_minutes: u64,
    source: &S,
    now_s: i64,
) -> Result<Vec<Observation>, store::StoreError> {
    let rows = source
        .unpriced_since(now_s - (window_minutes as i64) * 60)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Observation {
            key: key(
                rule,
                &r.tenant_id,
                format!("{}|{}", r.provider, r.request_model),
            ),
            kind: "unpriced_model".into(),
            severity: rule.severity,
            summary: format!(
                "{}: {} call(s) to {} ({}) have no price: their cost is unknown, not zero",
                r.tenant_id,
                r.calls,
                r.request_model,
                if r.provider.is_empty() {
                    "unknown provider"
                } else {
                    &r.provider
                }
            ),
            value: r.calls as f64,
            threshold: 0.0,
            link: format!("/cost?tenant={}", url_encode(&r.tenant_id)),
        })
        .collect())
}

async fn runaway_rule<S: Source>(
    rule: &RuleConfig,
    window_minutes: u64,
    max_tokens: Option<u64>,
    max_calls: Option<u64>,
    source: &S,
    now_s: i64,
) -> Result<Vec<Observation>, store::StoreError> {
    let (mt, mc) = (
        max_tokens.unwrap_or(u64::MAX),
        max_calls.unwrap_or(u64::MAX),
    );
    let rows = source
        .runaway_since((now_s - (window_minutes as i64) * 60) * NS, mt, mc)
        .await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.tokens > mt || r.calls > mc)
        .map(|r| {
            let over_tokens = r.tokens > mt;
            Observation {
                key: key(rule, &r.tenant_id, r.trace_id.clone()),
                kind: "runaway_trace".into(),
                severity: rule.severity,
                summary: format!(
                    "{}: trace {} used {} tokens in {} model calls (limit {})",
                    r.tenant_id,
                    r.trace_id,
                    r.tokens,
                    r.calls,
                    if over_tokens {
                        format!("{mt} tokens")
                    } else {
                        format!("{mc} calls")
                    }
                ),
                value: if over_tokens {
                    r.tokens as f64
                } else {
                    r.calls as f64
                },
                threshold: if over_tokens { mt as f64 } else { mc as f64 },
                link: format!("/traces/{}", r.trace_id),
            }
        })
        .collect())
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{RunawayRow, SpendRow, UnpricedRow};
    use store::StoreError;

    #[derive(Default)]
    struct Fake {
        window: Vec<SeriesRow>,
        baseline: Vec<SeriesRow>,
        spend: Vec<SpendRow>,
        unpriced: Vec<UnpricedRow>,
        runaway: Vec<RunawayRow>,
        fail: bool,
    }

    impl Source for Fake {
        async fn window_series(
            &self,
            _: i64,
            _: i64,
            _: Option<&str>,
        ) -> Result<Vec<SeriesRow>, StoreError> {
            if self.fail {
                return Err(StoreError::Query("down".into()));
            }
            Ok(self.window.clone())
        }
        async fn baseline_series(
            &self,
            _: i64,
            _: i64,
            _: Option<&str>,
        ) -> Result<Vec<SeriesRow>, StoreError> {
            Ok(self.baseline.clone())
        }
        async fn spend_since(&self, _: i64) -> Result<Vec<SpendRow>, StoreError> {
            Ok(self.spend.clone())
        }
        async fn unpriced_since(&self, _: i64) -> Result<Vec<UnpricedRow>, StoreError> {
            Ok(self.unpriced.clone())
        }
        async fn runaway_since(
            &self,
            _: i64,
            _: u64,
            _: u64,
        ) -> Result<Vec<RunawayRow>, StoreError> {
            Ok(self.runaway.clone())
        }
    }

    fn row(tenant: &str, resp: &str, total: u64, failed: u64) -> SeriesRow {
        SeriesRow {
            tenant_id: tenant.into(),
            request_model: "gpt-4o-mini".into(),
            name: "json_schema".into(),
            response_model: resp.into(),
            total,
            failed,
        }
    }

    const NOW: i64 = 1_795_000_000;

    #[tokio::test]
    async fn a_spike_names_the_model_change() {
        let fake = Fake {
            window: vec![
                row("globex", "gpt-4o-mini-2025-04-14", 400, 80),
                row("acme", "gpt-4o-mini-2024-07-18", 400, 9),
            ],
            baseline: vec![
                row("globex", "gpt-4o-mini-2024-07-18", 50_000, 1_000),
                row("acme", "gpt-4o-mini-2024-07-18", 50_000, 1_000),
            ],
            ..Default::default()
        };
        let round = evaluate(&AlertsConfig::default(), &fake, NOW).await;
        let spikes: Vec<&Observation> = round
            .found
            .iter()
            .filter(|o| o.kind == "validation_failure_spike")
            .collect();
        assert_eq!(spikes.len(), 1, "{spikes:?}");
        let s = spikes[0];
        assert_eq!(s.key.tenant, "globex");
        assert!(
            s.summary
                .contains("changed from gpt-4o-mini-2024-07-18 to gpt-4o-mini-2025-04-14"),
            "{}",
            s.summary
        );
        assert!(s.link.starts_with("/drift?tenant=globex"));
        assert!(round.evaluated.contains("validation-failure-spike"));
    }

    #[tokio::test]
    async fn budgets_warn_then_go_critical_with_a_forecast() {
        let mut cfg = AlertsConfig::default();
        cfg.budgets.insert("acme".into(), Decimal::from(100));
        cfg.budgets.insert("globex".into(), Decimal::from(1000));
        let fake = Fake {
            spend: vec![
                SpendRow {
                    tenant_id: "acme".into(),
                    cost: "85.50".parse().unwrap(),
                },
                SpendRow {
                    tenant_id: "globex".into(),
                    cost: "10".parse().unwrap(),
                },
            ],
            ..Default::default()
        };
        let round = evaluate(&cfg, &fake, NOW).await;
        let b: Vec<&Observation> = round.found.iter().filter(|o| o.kind == "budget").collect();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].severity, Severity::Warning);
        assert!(
            b[0].summary.contains("85.50 USD spent") && b[0].summary.contains("forecast"),
            "{}",
            b[0].summary
        );
        let fake = Fake {
            spend: vec![SpendRow {
                tenant_id: "acme".into(),
                cost: "100.01".parse().unwrap(),
            }],
            ..Default::default()
        };
        let round = evaluate(&cfg, &fake, NOW).await;
        assert_eq!(
            round
                .found
                .iter()
                .find(|o| o.kind == "budget")
                .unwrap()
                .severity,
            Severity::Critical
        );
    }

    #[tokio::test]
    async fn a_failing_source_evaluates_nothing_for_that_rule() {
        let fake = Fake {
            fail: true,
            ..Default::default()
        };
        let round = evaluate(&AlertsConfig::default(), &fake, NOW).await;
        assert!(!round.evaluated.contains("validation-failure-spike"));
        assert!(round.evaluated.contains("unpriced-model"));
        assert_eq!(round.failed.len(), 1);
    }

    #[tokio::test]
    async fn unpriced_and_runaway_are_reported_in_scope() {
        let mut cfg = AlertsConfig::default();
        cfg.rules = cfg.effective_rules();
        for r in cfg.rules.iter_mut() {
            if r.name == "runaway-trace" {
                r.tenants = Some(vec!["acme".into()]);
            }
        }
        let fake = Fake {
            unpriced: vec![UnpricedRow {
                tenant_id: "initech".into(),
                provider: "vllm".into(),
                request_model: "ft-1".into(),
                calls: 12,
            }],
            runaway: vec![
                RunawayRow {
                    tenant_id: "acme".into(),
                    trace_id: "ab".into(),
                    tokens: 900_000,
                    calls: 3,
                },
                RunawayRow {
                    tenant_id: "globex".into(),
                    trace_id: "cd".into(),
                    tokens: 900_000,
                    calls: 3,
                },
            ],
            ..Default::default()
        };
        let round = evaluate(&cfg, &fake, NOW).await;
        let u = round
            .found
            .iter()
            .find(|o| o.kind == "unpriced_model")
            .unwrap();
        assert!(u.summary.contains("unknown, not zero"));
        let r: Vec<_> = round
            .found
            .iter()
            .filter(|o| o.kind == "runaway_trace")
            .collect();
        assert_eq!(r.len(), 1, "globex is out of the rule's scope");
        assert_eq!(r[0].link, "/traces/ab");
    }

    #[test]
    fn month_progress_is_calendar_true() {
        use schemas::civil::Day;
        let secs = |d: &str| i64::from(Day::parse(d).unwrap().0) * 86_400;
        // 2026-11-23 12:00:00 UTC
        let t = secs("2026-11-23") + 12 * 3600;
        let (start, elapsed, len) = month_progress(t);
        assert_eq!(start, secs("2026-11-01"));
        assert_eq!(len, 30 * 86_400);
        assert_eq!(elapsed, 22 * 86_400 + 12 * 3600);
        let (_, _, feb) = month_progress(secs("2028-02-10"));
        assert_eq!(feb, 29 * 86_400);
        let (_, _, dec) = month_progress(secs("2026-12-31") + 86_399);
        assert_eq!(dec, 31 * 86_400, "December runs into the next year");
    }
}
