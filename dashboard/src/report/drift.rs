//! The drift page: validation failure rate over time per tenant × model ×
//! validation name, annotated where the response model (the model version)
//! changed, and the top failure reasons in the window.
//!
//! Invariants: a rate is shown only where there were checks (no checks is a
//! gap, not 0%); an annotation marks the first bucket in which a response
//! model not seen earlier in the window answered.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::civil::{self, Day};
use crate::error::DashboardError;
use crate::fmt;
use crate::params::Params;
use crate::query::{Queries, ReasonRow, Scope, ValidationQuery, ValidationRow};
use crate::svg::{self, Annotation, Svg};

pub const PARAMS: &[&str] = &["tenant", "model", "name", "days", "bucket"];
/// Charts drawn at most; the rest are listed in the table only.
pub const MAX_CHARTS: usize = 24;

#[derive(Debug, Clone, PartialEq)]
pub struct DriftRequest {
    pub tenant: Option<String>,
    pub model: Option<String>,
    pub name: Option<String>,
    pub days: u32,
    pub bucket_secs: u32,
}

impl DriftRequest {
    pub fn parse(p: &Params) -> Result<Self, DashboardError> {
        let days = match p.get("days") {
            None => 14,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=90).contains(d))
                .ok_or_else(|| {
                    DashboardError::bad(
                        "days",
                        format!("{v:?} is not a number of days between 1 and 90"),
                    )
                })?,
        };
        let bucket_secs = match p.choice("bucket", &["hour", "day"])? {
            Some("hour") => 3600,
            Some(_) => 86_400,
            None if days <= 3 => 3600,
            None => 86_400,
        };
        if bucket_secs == 3600 && days > 14 {
            return Err(DashboardError::bad(
                "bucket",
                "hourly buckets are limited to 14 days",
            ));
        }
        Ok(Self {
            tenant: p.string("tenant"),
            model: p.string("model"),
            name: p.string("name"),
            days,
            bucket_secs,
        })
    }

    /// Window `[from, to)` in ns, ending at the end of the current bucket.
    pub fn window(&self, now_ns: i64) -> (i64, i64) {
        let b = i64::from(self.bucket_secs) * 1_000_000_000;
        let to = (now_ns.div_euclid(b) + 1) * b;
        (to - i64::from(self.days) * civil::DAY_NS, to)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Bucket start, `YYYY-MM-DD HH:MM:SS` UTC.
    pub at: String,
    pub total: u64,
    pub failed: u64,
    /// `failed / total`; `None` when there were no checks.
    pub rate: Option<f64>,
    pub response_models: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelChange {
    pub at: String,
    pub response_model: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub tenant: String,
    pub model: String,
    pub name: String,
    pub total: u64,
    pub failed: u64,
    pub rate_text: String,
    /// Rate in the last bucket with checks, for the table.
    pub latest_text: String,
    pub points: Vec<Point>,
    pub model_changes: Vec<ModelChange>,
    #[serde(skip)]
    pub chart: Option<Svg>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    pub name: String,
    pub explanation: String,
    pub failures: u64,
    pub last_seen: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub from: String,
    pub to: String,
    pub bucket: &'static str,
    pub series: Vec<Series>,
    pub reasons: Vec<Reason>,
    pub charts_omitted: usize,
}

pub async fn load(
    q: &dyn Queries,
    scope: &Scope,
    req: &DriftRequest,
    now_ns: i64,
) -> Result<Drift, DashboardError> {
    let (from_ns, to_ns) = req.window(now_ns);
    let vq = ValidationQuery {
        from_ns,
        to_ns,
        bucket_secs: req.bucket_secs,
        tenant: req.tenant.clone(),
        model: req.model.clone(),
        name: req.name.clone(),
    };
    let (rows, reasons) = tokio::try_join!(
        q.validation(scope, vq.clone()),
        q.failure_reasons(scope, vq.clone(), 10)
    )?;
    Ok(shape(req, from_ns, to_ns, &rows, &reasons))
}

pub fn shape(
    req: &DriftRequest,
    from_ns: i64,
    to_ns: i64,
    rows: &[ValidationRow],
    reasons: &[ReasonRow],
) -> Drift {
    let b = i64::from(req.bucket_secs);
    let first = from_ns.div_euclid(1_000_000_000).div_euclid(b) * b;
    let n = usize::try_from((to_ns.div_euclid(1_000_000_000) - first).div_euclid(b))
        .unwrap_or(0)
        .max(1);
    let label_of = |i: usize| {
        let secs = first + i as i64 * b;
        if b >= 86_400 {
            Day::from_unix_ns(secs * 1_000_000_000).short()
        } else {
            let t = civil::format_ns(secs * 1_000_000_000);
            format!(
                "{} {}",
                Day::from_unix_ns(secs * 1_000_000_000).short(),
                &t[11..16]
            )
        }
    };
    // (tenant, model, name) -> per bucket: (total, failed, response models)
    type Cell = (u64, u64, Vec<String>);
    let mut groups: BTreeMap<(String, String, String), Vec<Cell>> = BTreeMap::new();
    for r in rows {
        let Ok(i) = usize::try_from((i64::from(r.bucket) - first).div_euclid(b)) else {
            continue;
        };
        if i >= n {
            continue;
        }
        let cells = groups
            .entry((
                r.tenant_id.clone(),
                super::label(&r.request_model),
                super::label(&r.name),
            ))
            .or_insert_with(|| vec![(0, 0, Vec::new()); n]);
        let c = &mut cells[i];
        c.0 += r.total;
        c.1 += r.failed;
        if !r.response_model.is_empty() && !c.2.contains(&r.response_model) {
            c.2.push(r.response_model.clone());
        }
    }
    let labels: Vec<String> = (0..n).map(label_of).collect();
    let mut series: Vec<Series> = groups
        .into_iter()
        .map(|((tenant, model, name), cells)| {
            let mut seen: Vec<String> = Vec::new();
            let mut changes = Vec::new();
            let mut annotations = Vec::new();
            for (i, c) in cells.iter().enumerate() {
                for m in &c.2 {
                    if !seen.contains(m) {
                        if !seen.is_empty() {
                            changes.push(ModelChange {
                                at: civil::format_ns((first + i as i64 * b) * 1_000_000_000),
                                response_model: m.clone(),
                            });
                            annotations.push(Annotation {
                                index: i,
                                label: format!("→ {m}"),
                            });
                        }
                        seen.push(m.clone());
                    }
                }
            }
            let total: u64 = cells.iter().map(|c| c.0).sum();
            let failed: u64 = cells.iter().map(|c| c.1).sum();
            let latest = cells
                .iter()
                .rev()
                .find(|c| c.0 > 0)
                .map(|c| fmt::pct(c.1, c.0))
                .unwrap_or_else(|| "–".into());
            let points: Vec<Point> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| Point {
                    at: civil::format_ns((first + i as i64 * b) * 1_000_000_000),
                    total: c.0,
                    failed: c.1,
                    rate: (c.0 > 0).then(|| c.1 as f64 / c.0 as f64),
                    response_models: c.2.clone(),
                })
                .collect();
            let rates: Vec<Option<f64>> = points.iter().map(|p| p.rate).collect();
            let volumes: Vec<u64> = points.iter().map(|p| p.total).collect();
            let titles: Vec<String> = points
                .iter()
                .zip(&labels)
                .map(|(p, l)| {
                    format!(
                        "{l}: {} failed of {} ({}) · {}",
                        p.failed,
                        p.total,
                        fmt::pct(p.failed, p.total),
                        p.response_models.join(", ")
                    )
                })
                .collect();
            let chart = svg::rate_chart(&labels, &rates, &volumes, &titles, &annotations);
            Series {
                tenant,
                model,
                name,
                total,
                failed,
                rate_text: fmt::pct(failed, total),
                latest_text: latest,
                points,
                model_changes: changes,
                chart: Some(chart),
            }
        })
        .collect();
    series.sort_by(|a, b| b.failed.cmp(&a.failed).then(b.total.cmp(&a.total)));
    let omitted = series.len().saturating_sub(MAX_CHARTS);
    for s in series.iter_mut().skip(MAX_CHARTS) {
        s.chart = None;
    }
    Drift {
        from: civil::format_ns(from_ns),
        to: civil::format_ns(to_ns),
        bucket: if req.bucket_secs >= 86_400 {
            "day"
        } else {
            "hour"
        },
        series,
        reasons: reasons
            .iter()
            .map(|r| Reason {
                name: r.name.clone(),
                explanation: if r.explanation.is_empty() {
                    "(no explanation given)".into()
                } else {
                    r.explanation.clone()
                },
                failures: r.failures,
                last_seen: civil::format_ns(r.last_seen_ns),
            })
            .collect(),
        charts_omitted: omitted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vrow(bucket: u32, resp: &str, total: u64, failed: u64) -> ValidationRow {
        ValidationRow {
            bucket,
            tenant_id: "acme".into(),
            request_model: "gpt-4o".into(),
            response_model: resp.into(),
            name: "json_schema".into(),
            total,
            passed: total - failed,
            failed,
        }
    }

    #[test]
    fn model_changes_are_annotated_and_empty_buckets_are_gaps() {
        let req = DriftRequest {
            tenant: None,
            model: None,
            name: None,
            days: 3,
            bucket_secs: 86_400,
        };
        let day0 = 20_000u32 * 86_400;
        let from = i64::from(day0) * 1_000_000_000;
        let to = from + 3 * civil::DAY_NS;
        let rows = vec![
            vrow(day0, "gpt-4o-2024-08-06", 100, 1),
            vrow(day0 + 2 * 86_400, "gpt-4o-2024-11-20", 50, 20),
        ];
        let d = shape(&req, from, to, &rows, &[]);
        assert_eq!(d.series.len(), 1);
        let s = &d.series[0];
        assert_eq!(s.points.len(), 3);
        assert_eq!(s.points[1].rate, None, "no checks is a gap, not 0%");
        assert_eq!(s.points[2].rate, Some(0.4));
        assert_eq!(s.model_changes.len(), 1);
        assert_eq!(s.model_changes[0].response_model, "gpt-4o-2024-11-20");
        assert_eq!(s.rate_text, "14.0%");
        assert!(
            s.chart
                .as_ref()
                .unwrap()
                .as_str()
                .contains("→ gpt-4o-2024-11-20")
        );
    }

    #[test]
    fn bad_params_are_rejected() {
        let p = Params::parse(Some("days=0"), PARAMS).unwrap();
        assert!(DriftRequest::parse(&p).is_err());
        let p = Params::parse(Some("days=30&bucket=hour"), PARAMS).unwrap();
        assert!(DriftRequest::parse(&p).is_err());
        let p = Params::parse(Some("days=2"), PARAMS).unwrap();
        assert_eq!(DriftRequest::parse(&p).unwrap().bucket_secs, 3600);
    }
}
