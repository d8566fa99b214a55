//! The traces list: LLM calls matching filters, newest first by default,
//! paginated by keyset (the last row's sort key), never by OFFSET, so page 50
//! costs what page 1 costs.
//!
//! Invariants: the list reads narrow columns and 240-character previews only;
//! the text filter searches those previews (said on the page); the "next"
//! link carries every filter plus the cursor.

use serde::Serialize;

use crate::civil;
use crate::error::DashboardError;
use crate::fmt;
use crate::params::{Params, link};
use crate::query::{CallFilter, CallRow, Cursor, FilterOptions, Queries, Scope, Sort};
use store::rows::decimal_from_i64;

pub const PARAMS: &[&str] = &[
    "tenant",
    "service",
    "model",
    "status",
    "validation",
    "range",
    "q",
    "sort",
    "cursor",
];
/// Time-range presets: name and length in seconds.
pub const RANGES: &[(&str, i64)] = &[
    ("15m", 900),
    ("1h", 3600),
    ("6h", 21_600),
    ("24h", 86_400),
    ("7d", 604_800),
    ("14d", 1_209_600),
    ("30d", 2_592_000),
];
pub const STATUSES: &[&str] = &["ok", "error", "unset"];
pub const VALIDATIONS: &[&str] = &["pass", "fail", "none"];
pub const SORTS: &[&str] = &["newest", "oldest", "slowest", "costliest"];

#[derive(Debug, Clone, PartialEq)]
pub struct TracesRequest {
    pub filter: CallFilter,
    pub range: &'static str,
    /// The filters as given, for links (without the cursor).
    pub pairs: Vec<(String, String)>,
}

impl TracesRequest {
    pub fn parse(p: &Params, now_ns: i64, page_size: u32) -> Result<Self, DashboardError> {
        let range_names: Vec<&str> = RANGES.iter().map(|r| r.0).collect();
        let range = p.choice("range", &range_names)?.unwrap_or("24h");
        let secs = RANGES
            .iter()
            .find(|r| r.0 == range)
            .map(|r| r.1)
            .unwrap_or(86_400);
        let sort = p
            .choice("sort", SORTS)?
            .and_then(Sort::parse)
            .unwrap_or_default();
        let cursor = p
            .get("cursor")
            .map(|c| {
                Cursor::decode(c).ok_or_else(|| {
                    DashboardError::bad(
                        "cursor",
                        "not a cursor from this page; start from the first page",
                    )
                })
            })
            .transpose()?;
        let filter = CallFilter {
            tenant: p.string("tenant"),
            service: p.string("service"),
            model: p.string("model"),
            status: p.choice("status", STATUSES)?.map(str::to_string),
            validation: p.choice("validation", VALIDATIONS)?.map(str::to_string),
            from_ns: now_ns - secs * 1_000_000_000,
            to_ns: now_ns + 60_000_000_000,
            text: p.string("q"),
            sort,
            cursor,
            limit: page_size,
        };
        let pairs = p
            .pairs()
            .filter(|(k, _)| *k != "cursor")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Self {
            filter,
            range,
            pairs,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CallView {
    pub time: String,
    pub trace_id: String,
    pub span_id: String,
    pub tenant: String,
    pub service: String,
    pub model: String,
    pub status: String,
    pub validation: String,
    pub duration: String,
    pub duration_ns: u64,
    pub ttft: String,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub tokens_text: String,
    /// Exact cost; `None` when the model is unpriced (unknown, not zero).
    pub cost: Option<fmt::Money>,
    pub cost_text: String,
    pub price_status: String,
    /// False when another span already counts this call's cost.
    pub counted: bool,
    pub input_preview: String,
    pub output_preview: String,
    pub href: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TracesPage {
    pub calls: Vec<CallView>,
    /// Link to the next page (filters + cursor), when there is one.
    pub next: Option<String>,
    pub next_cursor: Option<String>,
    /// Link back to the first page, when this is not it.
    pub first: Option<String>,
    pub sort: &'static str,
    pub range: &'static str,
    pub options: FilterOptions,
    #[serde(skip)]
    pub selected: Vec<(String, String)>,
}

impl TracesPage {
    pub fn selected(&self, name: &str) -> &str {
        self.selected
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// Loads one page; `options` (the filter choices) is fetched by the caller,
/// usually from a cache, concurrently with this.
pub async fn load(
    q: &dyn Queries,
    scope: &Scope,
    req: &TracesRequest,
    options: FilterOptions,
) -> Result<TracesPage, DashboardError> {
    let mut f = req.filter.clone();
    f.limit = req.filter.limit + 1;
    let mut rows = q.list_calls(scope, f).await?;
    let more = rows.len() > req.filter.limit as usize;
    rows.truncate(req.filter.limit as usize);
    let next_cursor = more
        .then(|| {
            rows.last()
                .map(|r| cursor_after(req.filter.sort, r).encode())
        })
        .flatten();
    let pairs = || req.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let next = next_cursor
        .as_ref()
        .map(|c| link("/traces", pairs().chain([("cursor", c.as_str())])));
    let first = req
        .filter
        .cursor
        .is_some()
        .then(|| link("/traces", pairs()));
    Ok(TracesPage {
        calls: rows.iter().map(view).collect(),
        next,
        next_cursor,
        first,
        sort: req.filter.sort.as_str(),
        range: req.range,
        options,
        selected: req.pairs.clone(),
    })
}

/// The keyset of the last row shown, for the sort in use.
pub fn cursor_after(sort: Sort, r: &CallRow) -> Cursor {
    let value = match sort {
        Sort::Newest | Sort::Oldest => r.start_ns,
        Sort::Slowest => i64::try_from(r.duration_ns).unwrap_or(i64::MAX),
        Sort::Costliest => r.cost_total,
    };
    Cursor {
        value,
        start_ns: r.start_ns,
        trace_id: r.trace_id.clone(),
        span_id: r.span_id.clone(),
    }
}

fn view(r: &CallRow) -> CallView {
    let model = if r.response_model.is_empty() {
        r.request_model.clone()
    } else {
        r.response_model.clone()
    };
    let unpriced = r.price_status == "unpriced_model";
    let cost = (!unpriced && !r.currency.is_empty()).then(|| fmt::Money {
        amount: decimal_from_i64(r.cost_total),
        currency: r.currency.clone(),
    });
    let cost_text = match (&cost, unpriced) {
        (_, true) => "unpriced".to_string(),
        (Some(m), _) if r.counted => m.to_string(),
        (Some(_), _) => "counted elsewhere".to_string(),
        (None, _) => "–".to_string(),
    };
    CallView {
        time: civil::format_ns(r.start_ns),
        trace_id: r.trace_id.clone(),
        span_id: r.span_id.clone(),
        tenant: r.tenant_id.clone(),
        service: r.service_name.clone(),
        model,
        status: r.status_code.clone(),
        validation: r.validation.clone(),
        duration: fmt::ns(r.duration_ns),
        duration_ns: r.duration_ns,
        ttft: r.ttft_ns.map(fmt::ns).unwrap_or_else(|| "–".into()),
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        tokens_text: format!(
            "{} → {}",
            fmt::opt_count(r.input_tokens),
            fmt::opt_count(r.output_tokens)
        ),
        cost,
        cost_text,
        price_status: r.price_status.clone(),
        counted: r.counted,
        input_preview: r.input_preview.clone(),
        output_preview: r.output_preview.clone(),
        href: format!(
            "/traces/{}?span={}#span-{}",
            r.trace_id, r.span_id, r.span_id
        ),
    }
}
