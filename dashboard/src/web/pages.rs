//! Page handlers and their templates: one askama struct per page; htmx
//! fragments are named blocks of the same template.
//!
//! Every handler is: parse the query string ([`Params`]), load the view from
//! `report`, render. Nothing here queries the store directly.

use askama::Template;
use axum::Json;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::assets::{Assets, assets};
use super::{ApiError, AppState, HtmlError, html, vary_hx, wants_fragment};
use crate::auth::access::Scoped;
use crate::civil::{self, Day};
use crate::error::DashboardError;
use crate::params::{Params, link};
use crate::report::{alerts, cost, drift, overview, trace, traces};

/// Layout data every page shares.
pub struct Chrome {
    pub nav: &'static str,
    pub assets: &'static Assets,
}

fn chrome(nav: &'static str) -> Chrome {
    Chrome {
        nav,
        assets: assets(),
    }
}

fn render<T: Template>(t: &T) -> Result<Response, HtmlError> {
    Ok(html(StatusCode::OK, t.render()?))
}

// ---------------------------------------------------------------- overview

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub chrome: Chrome,
    pub o: overview::Overview,
    pub options: crate::query::FilterOptions,
}

async fn load_overview(
    s: &AppState,
    q: Option<&str>,
) -> Result<overview::Overview, DashboardError> {
    let p = Params::parse(q, overview::PARAMS)?;
    overview::load(s.queries.as_ref(), &s.scope, &p, Day::today()).await
}

pub async fn overview(Scoped(s): Scoped, RawQuery(q): RawQuery) -> Result<Response, HtmlError> {
    let (o, options) = tokio::try_join!(load_overview(&s, q.as_deref()), s.filter_options())?;
    render(&OverviewPage {
        chrome: chrome("overview"),
        o,
        options,
    })
}

pub async fn overview_json(
    Scoped(s): Scoped,
    RawQuery(q): RawQuery,
) -> Result<Json<overview::Overview>, ApiError> {
    Ok(Json(load_overview(&s, q.as_deref()).await?))
}

// ---------------------------------------------------------------- cost

#[derive(Template)]
#[template(path = "cost.html")]
pub struct CostPage {
    pub chrome: Chrome,
    pub r: cost::CostReport,
    pub csv_href: String,
    pub all_href: String,
    pub options: crate::query::FilterOptions,
}

impl CostPage {
    /// Drill-down link into a tenant, keeping the period.
    pub fn tenant_href(&self, tenant: &str) -> String {
        link(
            "/cost",
            [
                ("from", self.r.from.as_str()),
                ("to", self.r.to.as_str()),
                ("tenant", tenant),
            ],
        )
    }
}

async fn load_cost(s: &AppState, q: Option<&str>) -> Result<cost::CostReport, DashboardError> {
    let p = Params::parse(q, cost::PARAMS)?;
    let today = Day::today();
    let req = cost::CostRequest::parse(&p, today)?;
    cost::load(
        s.queries.as_ref(),
        &s.scope,
        &req,
        &s.budgets,
        &s.currency,
        today,
    )
    .await
}

pub async fn cost(Scoped(s): Scoped, RawQuery(q): RawQuery) -> Result<Response, HtmlError> {
    let (r, options) = tokio::try_join!(load_cost(&s, q.as_deref()), s.filter_options())?;
    let period = [("from", r.from.as_str()), ("to", r.to.as_str())];
    let csv_href = link(
        "/cost.csv",
        period
            .into_iter()
            .chain(r.tenant.as_deref().map(|t| ("tenant", t))),
    );
    let all_href = link("/cost", period);
    render(&CostPage {
        chrome: chrome("cost"),
        r,
        csv_href,
        all_href,
        options,
    })
}

pub async fn cost_json(
    Scoped(s): Scoped,
    RawQuery(q): RawQuery,
) -> Result<Json<cost::CostReport>, ApiError> {
    Ok(Json(load_cost(&s, q.as_deref()).await?))
}

pub async fn cost_csv(Scoped(s): Scoped, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let r = load_cost(&s, q.as_deref()).await?;
    let name = format!(
        "loupe-cost-{}-{}{}.csv",
        r.from,
        r.to,
        r.tenant
            .as_deref()
            .map(|t| format!("-{}", t.replace(|c: char| !c.is_ascii_alphanumeric(), "_")))
            .unwrap_or_default()
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        cost::to_csv(&r),
    )
        .into_response())
}

// ---------------------------------------------------------------- drift

#[derive(Template)]
#[template(path = "drift.html")]
pub struct DriftPage {
    pub chrome: Chrome,
    pub d: drift::Drift,
    pub req: drift::DriftRequest,
    pub options: crate::query::FilterOptions,
}

impl DriftPage {
    fn sel(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or("")
    }
    pub fn tenant(&self) -> &str {
        Self::sel(&self.req.tenant)
    }
    pub fn model(&self) -> &str {
        Self::sel(&self.req.model)
    }
    pub fn name(&self) -> &str {
        Self::sel(&self.req.name)
    }
    pub fn traces_href(&self, s: &drift::Series) -> String {
        link(
            "/traces",
            [
                ("tenant", s.tenant.as_str()),
                ("model", s.model.as_str()),
                ("validation", "fail"),
                ("range", "7d"),
            ],
        )
    }
}

async fn load_drift(
    s: &AppState,
    q: Option<&str>,
) -> Result<(drift::Drift, drift::DriftRequest), DashboardError> {
    let p = Params::parse(q, drift::PARAMS)?;
    let req = drift::DriftRequest::parse(&p)?;
    let d = drift::load(s.queries.as_ref(), &s.scope, &req, civil::now_ns()).await?;
    Ok((d, req))
}

pub async fn drift(Scoped(s): Scoped, RawQuery(q): RawQuery) -> Result<Response, HtmlError> {
    let ((d, req), options) = tokio::try_join!(load_drift(&s, q.as_deref()), s.filter_options())?;
    render(&DriftPage {
        chrome: chrome("drift"),
        d,
        req,
        options,
    })
}

pub async fn drift_json(
    Scoped(s): Scoped,
    RawQuery(q): RawQuery,
) -> Result<Json<drift::Drift>, ApiError> {
    Ok(Json(load_drift(&s, q.as_deref()).await?.0))
}

// ---------------------------------------------------------------- traces

#[derive(Template)]
#[template(path = "traces.html", blocks = ["results"])]
pub struct TracesListPage {
    pub chrome: Chrome,
    pub t: traces::TracesPage,
}

impl TracesListPage {
    pub fn sel(&self, name: &str) -> &str {
        self.t.selected(name)
    }
}

async fn load_traces(s: &AppState, q: Option<&str>) -> Result<traces::TracesPage, DashboardError> {
    let p = Params::parse(q, traces::PARAMS)?;
    let now = civil::now_ns();
    let req = traces::TracesRequest::parse(&p, now, s.page_size)?;
    let (options, page) = tokio::try_join!(s.filter_options(), async {
        traces::load(
            s.queries.as_ref(),
            &s.scope,
            &req,
            crate::query::FilterOptions::default(),
        )
        .await
    })?;
    Ok(traces::TracesPage { options, ..page })
}

pub async fn traces(
    Scoped(s): Scoped,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, HtmlError> {
    let t = load_traces(&s, q.as_deref()).await?;
    let page = TracesListPage {
        chrome: chrome("traces"),
        t,
    };
    let body = if wants_fragment(&headers) {
        page.as_results().render()?
    } else {
        page.render()?
    };
    Ok(vary_hx(html(StatusCode::OK, body)))
}

pub async fn traces_json(
    Scoped(s): Scoped,
    RawQuery(q): RawQuery,
) -> Result<Json<traces::TracesPage>, ApiError> {
    Ok(Json(load_traces(&s, q.as_deref()).await?))
}

// ---------------------------------------------------------------- trace detail

#[derive(Template)]
#[template(path = "trace.html")]
pub struct TracePage {
    pub chrome: Chrome,
    pub t: trace::TraceView,
    /// The span to open on load (from `?span=`).
    pub open: String,
}

async fn load_trace(
    s: &AppState,
    id: &str,
    q: Option<&str>,
) -> Result<(trace::TraceView, String), DashboardError> {
    let id = Params::hex_id("trace_id", id)?;
    let p = Params::parse(q, &["span"])?;
    let open = p
        .get("span")
        .map(|v| Params::hex_id("span", v))
        .transpose()?
        .unwrap_or_default();
    Ok((trace::load(s.queries.as_ref(), &s.scope, &id).await?, open))
}

pub async fn trace(
    Scoped(s): Scoped,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, HtmlError> {
    let (t, open) = load_trace(&s, &id, q.as_deref()).await?;
    render(&TracePage {
        chrome: chrome("traces"),
        t,
        open,
    })
}

pub async fn trace_json(
    Scoped(s): Scoped,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<trace::TraceView>, ApiError> {
    Ok(Json(load_trace(&s, &id, q.as_deref()).await?.0))
}

#[derive(Template)]
#[template(path = "span.html", blocks = ["detail"])]
pub struct SpanPage {
    pub chrome: Chrome,
    pub s: trace::SpanView,
}

/// Pretty-prints JSON text for display; other text is returned as is.
pub fn pretty(s: &str) -> String {
    serde_json::from_str::<serde_json::Value>(s)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| s.to_string())
}

async fn load_span(
    s: &AppState,
    trace_id: &str,
    span_id: &str,
    q: Option<&str>,
) -> Result<trace::SpanView, DashboardError> {
    Params::parse(q, &[])?;
    let t = Params::hex_id("trace_id", trace_id)?;
    let sp = Params::hex_id("span_id", span_id)?;
    trace::load_span(s.queries.as_ref(), &s.scope, &t, &sp).await
}

pub async fn span(
    Scoped(s): Scoped,
    headers: HeaderMap,
    Path((t, sp)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, HtmlError> {
    let v = load_span(&s, &t, &sp, q.as_deref()).await?;
    let page = SpanPage {
        chrome: chrome("traces"),
        s: v,
    };
    let body = if wants_fragment(&headers) {
        page.as_detail().render()?
    } else {
        page.render()?
    };
    Ok(vary_hx(html(StatusCode::OK, body)))
}

pub async fn span_json(
    Scoped(s): Scoped,
    Path((t, sp)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<trace::SpanView>, ApiError> {
    Ok(Json(load_span(&s, &t, &sp, q.as_deref()).await?))
}

// ---------------------------------------------------------------- alerts

#[derive(Template)]
#[template(path = "alerts.html")]
pub struct AlertsPage {
    pub chrome: Chrome,
    pub a: alerts::AlertsView,
}

async fn load_alerts(s: &AppState, q: Option<&str>) -> Result<alerts::AlertsView, DashboardError> {
    let p = Params::parse(q, alerts::PARAMS)?;
    let filter = alerts::AlertFilter::parse(&p)?;
    alerts::load(s.queries.as_ref(), &s.scope, filter, civil::now_ns()).await
}

pub async fn alerts(Scoped(s): Scoped, RawQuery(q): RawQuery) -> Result<Response, HtmlError> {
    let a = load_alerts(&s, q.as_deref()).await?;
    render(&AlertsPage {
        chrome: chrome("alerts"),
        a,
    })
}

pub async fn alerts_json(
    Scoped(s): Scoped,
    RawQuery(q): RawQuery,
) -> Result<Json<alerts::AlertsView>, ApiError> {
    Ok(Json(load_alerts(&s, q.as_deref()).await?))
}

// ---------------------------------------------------------------- errors

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub chrome: Chrome,
    pub status: u16,
    pub reason: &'a str,
    pub message: &'a str,
}

pub fn error_page(status: StatusCode, message: &str) -> Response {
    let page = ErrorPage {
        chrome: chrome(""),
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("Error"),
        message,
    };
    match page.render() {
        Ok(body) => html(status, body),
        Err(_) => (status, message.to_string()).into_response(),
    }
}

pub async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError(DashboardError::NotFound(uri.path().to_string())).into_response()
    } else {
        HtmlError(DashboardError::NotFound(format!("page {}", uri.path()))).into_response()
    }
}

/// Unix nanoseconds as a UTC timestamp, for templates.
pub fn at(ns: impl std::borrow::Borrow<u64>) -> String {
    civil::format_ns(i64::try_from(*ns.borrow()).unwrap_or(i64::MAX))
}
