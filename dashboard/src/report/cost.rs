//! The cost page: spend by tenant for a period, drill into a tenant by model,
//! feature and day, month to date against budget, and the CSV of exactly the
//! tables shown.
//!
//! Invariants: money is summed as `Decimal` per currency; unpriced calls are
//! counted and listed on their own and never shown as a $0 cost; the CSV is
//! written from the same [`CostReport`] the page renders.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use super::{UsageSum, group_by, label, money};
use crate::civil::Day;
use crate::error::DashboardError;
use crate::fmt::{Money, MoneySet};
use crate::params::Params;
use crate::query::{DayRange, Queries, Scope, UsageQuery, UsageRow};
use crate::svg::{self, Segment, Svg};

/// Longest period the cost page accepts.
pub const MAX_DAYS: i32 = 400;

pub const PARAMS: &[&str] = &["from", "to", "tenant"];

/// What was asked: an inclusive day range and maybe one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct CostRequest {
    pub from: Day,
    /// Inclusive.
    pub to: Day,
    pub tenant: Option<String>,
}

impl CostRequest {
    /// Defaults to month to date.
    pub fn parse(p: &Params, today: Day) -> Result<Self, DashboardError> {
        let to = p.day("to")?.unwrap_or(today);
        let from = p.day("from")?.unwrap_or(to.month_start());
        if from > to {
            return Err(DashboardError::bad(
                "from",
                format!("{from} is after to={to}"),
            ));
        }
        if to.0 - from.0 >= MAX_DAYS {
            return Err(DashboardError::bad(
                "from",
                format!("the period is longer than {MAX_DAYS} days"),
            ));
        }
        Ok(Self {
            from,
            to,
            tenant: p.string("tenant"),
        })
    }

    fn range(&self) -> DayRange {
        DayRange {
            from: self.from,
            to: self.to.offset(1),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// `tenant`, `model`, `feature` or `day`.
    pub dimension: &'static str,
    pub lines: Vec<UsageSum>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnpricedLine {
    pub tenant: String,
    pub provider: String,
    pub model: String,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BudgetLine {
    pub tenant: String,
    pub budget: Money,
    pub month_to_date: Money,
    /// Spend / budget (for the bar); not money.
    pub used_fraction: f64,
    pub over: bool,
    /// Calls this month whose cost is unknown: the spend is a lower bound.
    pub unpriced_calls: u64,
    #[serde(skip)]
    pub bar: Svg,
}

#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    pub from: String,
    pub to: String,
    pub tenant: Option<String>,
    pub currency: String,
    pub sections: Vec<Section>,
    pub total: UsageSum,
    pub unpriced: Vec<UnpricedLine>,
    pub budgets: Vec<BudgetLine>,
    #[serde(skip)]
    pub chart: Svg,
    #[serde(skip)]
    pub legend: Vec<(String, String)>,
}

/// Loads and shapes the cost report.
pub async fn load(
    q: &dyn Queries,
    scope: &Scope,
    req: &CostRequest,
    budgets: &BTreeMap<String, Decimal>,
    currency: &str,
    today: Day,
) -> Result<CostReport, DashboardError> {
    let rows = q
        .usage_by_day(
            scope,
            UsageQuery {
                days: req.range(),
                tenant: req.tenant.clone(),
            },
        )
        .await?;
    let month = DayRange {
        from: today.month_start(),
        to: today.offset(1),
    };
    let mtd_rows = if budgets.is_empty() || req.range() == month {
        None
    } else {
        Some(
            q.usage_by_day(
                scope,
                UsageQuery {
                    days: month,
                    tenant: req.tenant.clone(),
                },
            )
            .await?,
        )
    };
    let mtd = mtd_rows.as_deref().unwrap_or(&rows);
    Ok(shape(req, &rows, mtd, budgets, currency, scope))
}

/// Pure shaping of rollup rows into the report.
pub fn shape(
    req: &CostRequest,
    rows: &[UsageRow],
    month_rows: &[UsageRow],
    budgets: &BTreeMap<String, Decimal>,
    currency: &str,
    scope: &Scope,
) -> CostReport {
    let day_key = |r: &UsageRow| Day(i32::from(r.day)).to_string();
    let sections = match &req.tenant {
        None => vec![Section {
            dimension: "tenant",
            lines: group_by(rows, currency, |r| r.tenant_id.clone()),
        }],
        Some(_) => {
            let mut days = group_by(rows, currency, day_key);
            days.sort_by(|a, b| a.key.cmp(&b.key));
            vec![
                Section {
                    dimension: "model",
                    lines: group_by(rows, currency, |r| label(&r.model)),
                },
                Section {
                    dimension: "feature",
                    lines: group_by(rows, currency, |r| label(&r.feature)),
                },
                Section {
                    dimension: "day",
                    lines: days,
                },
            ]
        }
    };
    let mut total = UsageSum::named("total");
    for l in &sections[0].lines {
        total.merge(l);
    }

    let mut unpriced: BTreeMap<(String, String, String), UnpricedLine> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.price_status == "unpriced_model") {
        let e = unpriced
            .entry((r.tenant_id.clone(), r.provider.clone(), r.model.clone()))
            .or_insert_with(|| UnpricedLine {
                tenant: r.tenant_id.clone(),
                provider: label(&r.provider),
                model: label(&r.model),
                calls: 0,
                input_tokens: 0,
                output_tokens: 0,
            });
        e.calls += r.calls;
        e.input_tokens += r.input_tokens;
        e.output_tokens += r.output_tokens;
    }
    let mut unpriced: Vec<UnpricedLine> = unpriced.into_values().collect();
    unpriced.sort_by_key(|u| std::cmp::Reverse(u.calls));

    let mut budget_lines = Vec::new();
    for (tenant, budget) in budgets {
        if !scope.allows(tenant) || req.tenant.as_ref().is_some_and(|t| t != tenant) {
            continue;
        }
        let mut spent = Decimal::ZERO;
        let mut unpriced_calls = 0;
        for r in month_rows.iter().filter(|r| &r.tenant_id == tenant) {
            if r.currency == currency {
                spent += money(r.cost_total);
            }
            if r.price_status == "unpriced_model" {
                unpriced_calls += r.calls;
            }
        }
        let frac = if budget.is_zero() {
            if spent.is_zero() { 0.0 } else { 2.0 }
        } else {
            (spent / budget).to_string().parse::<f64>().unwrap_or(0.0)
        };
        budget_lines.push(BudgetLine {
            tenant: tenant.clone(),
            budget: Money {
                amount: *budget,
                currency: currency.to_string(),
            },
            month_to_date: Money {
                amount: spent,
                currency: currency.to_string(),
            },
            used_fraction: frac,
            over: spent > *budget,
            unpriced_calls,
            bar: svg::budget_bar(frac),
        });
    }

    let (chart, legend) = chart(req, rows, currency);
    CostReport {
        from: req.from.to_string(),
        to: req.to.to_string(),
        tenant: req.tenant.clone(),
        currency: currency.to_string(),
        sections,
        total,
        unpriced,
        budgets: budget_lines,
        chart,
        legend,
    }
}

/// Daily cost stacked by tenant (or by model inside a tenant): the top
/// series get colours, the rest are summed as "other".
fn chart(req: &CostRequest, rows: &[UsageRow], currency: &str) -> (Svg, Vec<(String, String)>) {
    let series_key = |r: &UsageRow| {
        if req.tenant.is_some() {
            label(&r.model)
        } else {
            r.tenant_id.clone()
        }
    };
    let ranked = group_by(rows, currency, series_key);
    let mut names: Vec<String> = ranked
        .iter()
        .take(svg::PALETTE)
        .map(|s| s.key.clone())
        .collect();
    let has_other = ranked.len() > svg::PALETTE;
    if has_other {
        names.push("other".to_string());
    }
    let days: Vec<Day> = req.range().days().collect();
    let mut cells: Vec<Vec<MoneySet>> = vec![vec![MoneySet::default(); names.len()]; days.len()];
    for r in rows {
        let Some(di) = days.iter().position(|d| d.0 == i32::from(r.day)) else {
            continue;
        };
        let k = series_key(r);
        let si = names
            .iter()
            .position(|n| *n == k)
            .unwrap_or(names.len().saturating_sub(1));
        if let Some(cell) = cells.get_mut(di).and_then(|c| c.get_mut(si)) {
            cell.add(&r.currency, money(r.cost_total));
        }
    }
    let mut max_day = Decimal::ZERO;
    let columns: Vec<Vec<Segment>> = cells
        .iter()
        .zip(&days)
        .map(|(col, day)| {
            let day_total: Decimal = col.iter().map(|m| m.get(currency)).sum();
            max_day = max_day.max(day_total);
            col.iter()
                .zip(&names)
                .map(|(m, name)| Segment {
                    value: m.get(currency).to_string().parse().unwrap_or(0.0),
                    title: format!("{name} · {day} · {m}"),
                })
                .collect()
        })
        .collect();
    let labels: Vec<String> = days.iter().map(|d| d.short()).collect();
    let max_label = Money {
        amount: max_day,
        currency: currency.to_string(),
    }
    .to_string();
    let legend = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                svg::series_class(if has_other && i == names.len() - 1 {
                    svg::PALETTE
                } else {
                    i
                }),
                n.clone(),
            )
        })
        .collect();
    (
        svg::stacked_bars(&labels, &names, &columns, &max_label),
        legend,
    )
}

/// CSV columns, in order.
pub const CSV_HEADER: &[&str] = &[
    "section",
    "key",
    "calls",
    "errors",
    "unpriced_calls",
    "missing_usage_calls",
    "estimated_usage_calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_input",
    "cost_output",
    "cost_cache_read",
    "cost_cache_write",
    "cost_total",
    "currency",
];

/// The report's tables as CSV (RFC 4180 quoting), money as exact decimals.
pub fn to_csv(r: &CostReport) -> String {
    let mut out = CSV_HEADER.join(",");
    out.push_str("\r\n");
    let mut line = |section: &str, l: &UsageSum| {
        let currencies: Vec<&String> = l.cost.total.0.keys().collect();
        let (cur, single) = match currencies.as_slice() {
            [] => (r.currency.clone(), true),
            [c] => ((*c).clone(), true),
            _ => ("mixed".to_string(), false),
        };
        let m = |s: &MoneySet| {
            if single {
                crate::fmt::plain_decimal(s.get(&cur))
            } else {
                s.plain()
            }
        };
        let cells = [
            section.to_string(),
            l.key.clone(),
            l.calls.to_string(),
            l.errors.to_string(),
            l.unpriced_calls.to_string(),
            l.missing_usage_calls.to_string(),
            l.estimated_calls.to_string(),
            l.tokens.input.to_string(),
            l.tokens.output.to_string(),
            l.tokens.cache_read.to_string(),
            l.tokens.cache_write.to_string(),
            l.tokens.reasoning.to_string(),
            m(&l.cost.input),
            m(&l.cost.output),
            m(&l.cost.cache_read),
            m(&l.cost.cache_write),
            m(&l.cost.total),
            cur,
        ];
        let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    };
    for s in &r.sections {
        for l in &s.lines {
            line(s.dimension, l);
        }
    }
    line("total", &r.total);
    out
}

/// Quotes a CSV cell when needed, and defuses spreadsheet formulas
/// (a tenant or model named `=cmd()` must not run in a spreadsheet).
fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(day: u16, tenant: &str, model: &str, status: &str, calls: u64, cost: i128) -> UsageRow {
        UsageRow {
            day,
            tenant_id: tenant.into(),
            provider: "openai".into(),
            model: model.into(),
            feature: "chat".into(),
            price_status: status.into(),
            currency: "USD".into(),
            spans: calls,
            calls,
            errors: 0,
            calls_missing_usage: 0,
            input_tokens: 10 * calls,
            output_tokens: 5 * calls,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            cost_input: cost / 2,
            cost_output: cost / 2,
            cost_cache_read: 0,
            cost_cache_write: 0,
            cost_total: cost,
        }
    }

    #[test]
    fn unpriced_calls_are_counted_apart_and_money_is_exact() {
        let req = CostRequest {
            from: Day(20_000),
            to: Day(20_001),
            tenant: None,
        };
        let rows = vec![
            row(20_000, "acme", "gpt-4o", "priced", 3, 1_000_000_000_001),
            row(20_001, "acme", "mystery-1", "unpriced_model", 2, 0),
            row(20_001, "beta", "gpt-4o", "priced", 1, 2_000_000_000_000),
        ];
        let mut budgets = BTreeMap::new();
        budgets.insert("acme".to_string(), Decimal::new(1, 0));
        let r = shape(&req, &rows, &rows, &budgets, "USD", &Scope::all());
        let tenants = &r.sections[0].lines;
        assert_eq!(tenants[0].key, "beta", "sorted by cost");
        let acme = &tenants[1];
        assert_eq!(acme.calls, 5);
        assert_eq!(acme.unpriced_calls, 2);
        assert_eq!(acme.cost.total.get("USD").to_string(), "1.000000000001");
        assert_eq!(r.unpriced.len(), 1);
        assert_eq!(r.unpriced[0].model, "mystery-1");
        assert!(r.budgets[0].over);
        assert_eq!(r.budgets[0].unpriced_calls, 2);
        let csv = to_csv(&r);
        assert!(
            csv.contains(
                "tenant,acme,5,0,2,0,0,50,25,0,0,0,0.50,0.50,0.00,0.00,1.000000000001,USD"
            ),
            "{csv}"
        );
        assert!(csv.contains("total,total,6,"));
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-1.5"), "-1.5");
    }

    #[test]
    fn requests_default_to_month_to_date_and_reject_reversed_ranges() {
        let today = Day::parse("2024-03-17").unwrap();
        let p = Params::parse(None, PARAMS).unwrap();
        let r = CostRequest::parse(&p, today).unwrap();
        assert_eq!(
            (r.from.to_string(), r.to.to_string()),
            ("2024-03-01".into(), "2024-03-17".into())
        );
        let p = Params::parse(Some("from=2024-03-10&to=2024-03-01"), PARAMS).unwrap();
        assert!(CostRequest::parse(&p, today).is_err());
    }
}
