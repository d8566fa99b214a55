//! HTTP: the router, shared state, response helpers and security headers.
//!
//! Invariants:
//! - Handlers are thin: parse parameters, call a `report::*::load`, render the
//!   same view as HTML, JSON (`/api/v1/…`) or CSV.
//! - Errors become responses in one place ([`HtmlError`], [`ApiError`]), with
//!   the status from [`DashboardError::status`].
//! - Every response carries a strict Content-Security-Policy (scripts and
//!   styles from this origin only, no inline code), so even a rendering bug
//!   could not run a prompt's `<script>`.
//! - Routes that answer htmx with a fragment send `Vary: HX-Request`.

pub mod assets;
pub mod pages;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_decimal::Decimal;

use crate::auth::guard;
use crate::error::DashboardError;
use crate::query::{FilterOptions, Queries, Scope};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub queries: Arc<dyn Queries>,
    pub scope: Scope,
    pub budgets: Arc<BTreeMap<String, Decimal>>,
    pub currency: String,
    pub page_size: u32,
    pub options_cache: Arc<OptionsCache>,
    /// Users, sessions and the login limiter.
    pub auth: Arc<crate::auth::guard::Auth>,
}

/// How long the filter drop-downs' choices are reused.
pub const OPTIONS_TTL: Duration = Duration::from_secs(60);
/// How far back the drop-downs look for tenants, services, models and names.
pub const OPTIONS_DAYS: i64 = 90;

/// The filter choices (tenants, services, models, validation names) change
/// slowly and every page shows them: computed at most once a minute per
/// tenant scope (never shared between scopes: a viewer must not see another
/// tenant's names). Bounded: cleared when it holds too many scopes.
#[derive(Default)]
pub struct OptionsCache {
    entries: Mutex<HashMap<ScopeKey, (Instant, FilterOptions)>>,
}

const OPTIONS_SCOPES: usize = 256;

/// A tenant scope as a cache key (`None`: every tenant).
type ScopeKey = Option<Vec<String>>;

impl AppState {
    /// The drop-downs' choices, from the cache when fresh.
    pub async fn filter_options(&self) -> Result<FilterOptions, DashboardError> {
        let key = self.scope.tenants.clone();
        let cached = {
            let guard = self
                .options_cache
                .entries
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            guard
                .get(&key)
                .filter(|(at, _)| at.elapsed() < OPTIONS_TTL)
                .map(|(_, o)| o.clone())
        };
        if let Some(o) = cached {
            return Ok(o);
        }
        let since = crate::civil::now_ns() - OPTIONS_DAYS * crate::civil::DAY_NS;
        let o = self.queries.filter_options(&self.scope, since).await?;
        let mut entries = self
            .options_cache
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if entries.len() >= OPTIONS_SCOPES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), o.clone()));
        Ok(o)
    }
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The dashboard's routes.
pub fn router(state: AppState) -> Router {
    let pages = Router::new()
        .route("/", get(pages::overview))
        .route("/api/v1", get(pages::overview_json))
        .route("/api/v1/", get(pages::overview_json))
        .route("/cost", get(pages::cost))
        .route("/cost.csv", get(pages::cost_csv))
        .route("/api/v1/cost", get(pages::cost_json))
        .route("/drift", get(pages::drift))
        .route("/api/v1/drift", get(pages::drift_json))
        .route("/traces", get(pages::traces))
        .route("/api/v1/traces", get(pages::traces_json))
        .route("/traces/{trace_id}", get(pages::trace))
        .route("/api/v1/traces/{trace_id}", get(pages::trace_json))
        .route("/traces/{trace_id}/spans/{span_id}", get(pages::span))
        .route(
            "/api/v1/traces/{trace_id}/spans/{span_id}",
            get(pages::span_json),
        )
        .route("/alerts", get(pages::alerts))
        .route("/api/v1/alerts", get(pages::alerts_json))
        .route("/static/{file}", get(assets::serve))
        .fallback(pages::not_found)
        .with_state(state.clone());
    let auth = Arc::clone(&state.auth);
    let sign_in = Router::new()
        .route("/login", get(guard::login_page).post(guard::login))
        .route("/logout", axum::routing::post(guard::logout))
        .route("/api/v1/session", get(guard::session))
        .route("/account", get(guard::account))
        .with_state(Arc::clone(&auth));
    pages
        .merge(sign_in)
        .layer(axum::middleware::from_fn_with_state(auth, guard::identify))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// True for an htmx request that wants a fragment (not a history restore,
/// which needs the whole page).
pub fn wants_fragment(h: &HeaderMap) -> bool {
    h.get("hx-request").is_some_and(|v| v == "true")
        && !h.contains_key("hx-history-restore-request")
}

/// An error rendered as the HTML error page.
pub struct HtmlError(pub DashboardError);

impl<E: Into<DashboardError>> From<E> for HtmlError {
    fn from(e: E) -> Self {
        HtmlError(e.into())
    }
}

impl IntoResponse for HtmlError {
    fn into_response(self) -> Response {
        self.0.log();
        let status = self.0.status();
        pages::error_page(status, &self.0.public_message())
    }
}

/// An error as JSON: `{"error": {"status": 400, "message": "…"}}`.
pub struct ApiError(pub DashboardError);

impl<E: Into<DashboardError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.log();
        let status = self.0.status();
        let body = serde_json::json!({
            "error": { "status": status.as_u16(), "message": self.0.public_message() }
        });
        (status, axum::Json(body)).into_response()
    }
}

/// Adds `Vary: HX-Request` (the response differs for htmx).
pub fn vary_hx(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("HX-Request"));
    r
}

pub fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}
