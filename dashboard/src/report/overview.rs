//! The overview: today's and this month's spend, calls, error and validation
//! failure rates, latency and unpriced calls, each with a 14-day trend.
//!
//! Invariants: "today" is the current UTC day; every rate carries its
//! denominator; unpriced calls are a tile of their own, never hidden in a $0.

use serde::Serialize;

use super::{UsageSum, label, money};
use crate::civil::Day;
use crate::error::DashboardError;
use crate::fmt::{self, MoneySet};
use crate::params::Params;
use crate::query::{
    DayRange, LatencyRow, Queries, Scope, UsageQuery, UsageRow, ValidationQuery, ValidationRow,
};
use crate::svg::{self, Svg};

pub const PARAMS: &[&str] = &["tenant"];
/// Days in each tile's trend.
pub const TREND_DAYS: i32 = 14;

#[derive(Debug, Clone, Serialize)]
pub struct DayPoint {
    pub day: String,
    pub cost: MoneySet,
    pub calls: u64,
    pub errors: u64,
    pub unpriced_calls: u64,
    pub validations: u64,
    pub validation_failures: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tile {
    pub label: &'static str,
    pub value: String,
    pub detail: String,
    /// `""`, `warn` or `bad`.
    pub tone: &'static str,
    pub href: String,
    #[serde(skip)]
    pub spark: Svg,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnpricedModel {
    pub tenant: String,
    pub model: String,
    pub calls: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub tenant: Option<String>,
    pub today: String,
    pub spend_today: MoneySet,
    pub spend_month_to_date: MoneySet,
    pub today_usage: UsageSum,
    pub validations_today: u64,
    pub validation_failures_today: u64,
    pub p50_ms_today: Option<f64>,
    pub p95_ms_today: Option<f64>,
    pub unpriced_models: Vec<UnpricedModel>,
    pub trend: Vec<DayPoint>,
    pub tiles: Vec<Tile>,
    pub has_data: bool,
}

pub async fn load(
    q: &dyn Queries,
    scope: &Scope,
    p: &Params,
    today: Day,
) -> Result<Overview, DashboardError> {
    let tenant = p.string("tenant");
    let trend_from = today.offset(1 - TREND_DAYS);
    let from = trend_from.min(today.month_start());
    let uq = UsageQuery {
        days: DayRange {
            from,
            to: today.offset(1),
        },
        tenant: tenant.clone(),
    };
    // Independent reads: run them at once (the engine serves each on its own connection).
    let (usage, latency, validation) = tokio::try_join!(
        q.usage_by_day(scope, uq.clone()),
        q.latency_by_day(
            scope,
            UsageQuery {
                days: DayRange {
                    from: trend_from,
                    to: today.offset(1)
                },
                tenant: tenant.clone()
            }
        ),
        q.validation(
            scope,
            ValidationQuery {
                from_ns: trend_from.start_ns(),
                to_ns: today.offset(1).start_ns(),
                bucket_secs: 86_400,
                tenant: tenant.clone(),
                model: None,
                name: None,
            },
        ),
    )?;
    Ok(shape(tenant, today, &usage, &latency, &validation))
}

fn finite(v: Option<&f64>) -> Option<f64> {
    v.copied().filter(|x| x.is_finite())
}

pub fn shape(
    tenant: Option<String>,
    today: Day,
    usage: &[UsageRow],
    latency: &[LatencyRow],
    validation: &[ValidationRow],
) -> Overview {
    let trend_from = today.offset(1 - TREND_DAYS);
    let mut trend: Vec<DayPoint> = (0..TREND_DAYS)
        .map(|i| DayPoint {
            day: trend_from.offset(i).to_string(),
            cost: MoneySet::default(),
            calls: 0,
            errors: 0,
            unpriced_calls: 0,
            validations: 0,
            validation_failures: 0,
            p50_ms: None,
            p95_ms: None,
        })
        .collect();
    let n = trend.len();
    let idx = |day: i32| usize::try_from(day - trend_from.0).ok().filter(|i| *i < n);
    let mut month = MoneySet::default();
    let mut today_usage = UsageSum::named("today");
    let mut unpriced: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for r in usage {
        let d = i32::from(r.day);
        if d >= today.month_start().0 {
            month.add(&r.currency, money(r.cost_total));
        }
        if d == today.0 {
            today_usage.add(r);
            if r.price_status == "unpriced_model" {
                *unpriced
                    .entry((r.tenant_id.clone(), label(&r.model)))
                    .or_default() += r.calls;
            }
        }
        if let Some(i) = idx(d) {
            let p = &mut trend[i];
            p.cost.add(&r.currency, money(r.cost_total));
            p.calls += r.calls;
            p.errors += r.errors;
            if r.price_status == "unpriced_model" {
                p.unpriced_calls += r.calls;
            }
        }
    }
    for l in latency {
        if let Some(i) = idx(i32::from(l.day)) {
            trend[i].p50_ms = finite(l.duration_ms.first());
            trend[i].p95_ms = finite(l.duration_ms.get(2));
        }
    }
    for v in validation {
        let day = Day::from_unix_ns(i64::from(v.bucket) * 1_000_000_000);
        if let Some(i) = idx(day.0) {
            trend[i].validations += v.total;
            trend[i].validation_failures += v.failed;
        }
    }
    let last = trend.last().cloned();
    let (vt, vf, p50, p95) = last
        .as_ref()
        .map(|p| (p.validations, p.validation_failures, p.p50_ms, p.p95_ms))
        .unwrap_or_default();
    let money_f = |m: &MoneySet| {
        m.0.values()
            .map(|d| d.to_string().parse::<f64>().unwrap_or(0.0))
            .sum::<f64>()
    };
    let spark = |f: &dyn Fn(&DayPoint) -> Option<f64>| {
        svg::sparkline(&trend.iter().map(f).collect::<Vec<_>>())
    };
    let rate = |n: u64, d: u64| {
        if d == 0 {
            None
        } else {
            Some(n as f64 / d as f64)
        }
    };
    let tlink = |path: &str| crate::params::link(path, tenant.as_deref().map(|t| ("tenant", t)));
    let mut cum = MoneySet::default();
    let month_start = today.month_start().to_string();
    let month_spark: Vec<Option<f64>> = trend
        .iter()
        .map(|p| {
            if p.day >= month_start {
                cum.merge(&p.cost);
                Some(money_f(&cum))
            } else {
                None
            }
        })
        .collect();
    let err_rate = rate(today_usage.errors, today_usage.calls).unwrap_or(0.0);
    let fail_rate = rate(vf, vt).unwrap_or(0.0);
    let tiles = vec![
        Tile {
            label: "Spend today",
            value: today_usage.cost.total.to_string(),
            detail: if today_usage.unpriced_calls > 0 {
                format!(
                    "+ {} unpriced calls",
                    fmt::count(today_usage.unpriced_calls)
                )
            } else {
                "UTC day".into()
            },
            tone: "",
            href: tlink("/cost"),
            spark: spark(&|p| Some(money_f(&p.cost))),
        },
        Tile {
            label: "Month to date",
            value: month.to_string(),
            detail: format!("since {month_start}"),
            tone: "",
            href: tlink("/cost"),
            spark: svg::sparkline(&month_spark),
        },
        Tile {
            label: "LLM calls today",
            value: fmt::count(today_usage.calls),
            detail: format!(
                "{} tokens in · {} out",
                fmt::count(today_usage.tokens.input),
                fmt::count(today_usage.tokens.output)
            ),
            tone: "",
            href: tlink("/traces"),
            spark: spark(&|p| Some(p.calls as f64)),
        },
        Tile {
            label: "Error rate",
            value: fmt::pct(today_usage.errors, today_usage.calls),
            detail: format!(
                "{} of {} calls",
                fmt::count(today_usage.errors),
                fmt::count(today_usage.calls)
            ),
            tone: if err_rate > 0.05 {
                "bad"
            } else if err_rate > 0.01 {
                "warn"
            } else {
                ""
            },
            href: "/traces?status=error".into(),
            spark: spark(&|p| rate(p.errors, p.calls)),
        },
        Tile {
            label: "Validation failures",
            value: fmt::pct(vf, vt),
            detail: format!("{} of {} checks", fmt::count(vf), fmt::count(vt)),
            tone: if fail_rate > 0.10 {
                "bad"
            } else if fail_rate > 0.02 {
                "warn"
            } else {
                ""
            },
            href: tlink("/drift"),
            spark: spark(&|p| rate(p.validation_failures, p.validations)),
        },
        Tile {
            label: "Latency p50 / p95",
            value: format!(
                "{} / {}",
                p50.map(fmt::ms).unwrap_or_else(|| "–".into()),
                p95.map(fmt::ms).unwrap_or_else(|| "–".into())
            ),
            detail: "trend: p95".into(),
            tone: "",
            href: "/traces?sort=slowest".into(),
            spark: spark(&|p| p.p95_ms),
        },
        Tile {
            label: "Unpriced-model calls",
            value: fmt::count(today_usage.unpriced_calls),
            detail: if unpriced.is_empty() {
                "every model has a price".into()
            } else {
                format!("{} model(s) without a price: cost unknown", unpriced.len())
            },
            tone: if today_usage.unpriced_calls > 0 {
                "warn"
            } else {
                ""
            },
            href: tlink("/cost"),
            spark: spark(&|p| Some(p.unpriced_calls as f64)),
        },
    ];
    let has_data = !usage.is_empty() || !validation.is_empty();
    Overview {
        tenant,
        today: today.to_string(),
        spend_today: today_usage.cost.total.clone(),
        spend_month_to_date: month,
        validations_today: vt,
        validation_failures_today: vf,
        p50_ms_today: p50,
        p95_ms_today: p95,
        unpriced_models: unpriced
            .into_iter()
            .map(|((tenant, model), calls)| UnpricedModel {
                tenant,
                model,
                calls,
            })
            .collect(),
        today_usage,
        trend,
        tiles,
        has_data,
    }
}
