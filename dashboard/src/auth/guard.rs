//! The request side of authentication, as axum middleware and routes:
//! identify the caller (open mode, trusted proxy header, or session cookie),
//! refuse or redirect the unidentified, check CSRF tokens on state-changing
//! requests, set security headers on every response, and serve login/logout.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::sessions::{self, Sessions};
use super::{AuthConfig, LoginLimiter, Principal};

/// Header htmx requests carry the CSRF token in (set once in the layout).
pub const CSRF_HEADER: &str = "x-csrf-token";
const MAX_FORM: usize = 64 * 1024;

/// Shared authentication state.
pub struct Auth {
    pub config: AuthConfig,
    pub sessions: Sessions,
    pub limiter: LoginLimiter,
}

impl Auth {
    pub fn new(config: AuthConfig) -> Arc<Self> {
        let ttl = Duration::from_secs(config.session_ttl_secs.max(60));
        Arc::new(Self {
            config,
            sessions: Sessions::new(ttl),
            limiter: LoginLimiter::new(),
        })
    }
}

/// The CSRF token of the request's session (empty in open mode), for forms.
#[derive(Debug, Clone, Default)]
pub struct CsrfToken(pub String);

fn is_public(path: &str) -> bool {
    path == "/login" || path.starts_with("/static/") || path == "/healthz" || path == "/favicon.ico"
}

/// Identifies the caller and puts a [`Principal`] (and [`CsrfToken`]) in the
/// request's extensions, or answers 401 (API) / redirects to /login (pages).
pub async fn identify(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if !auth.config.enabled() {
        req.extensions_mut().insert(Principal::anonymous_admin());
        req.extensions_mut().insert(CsrfToken::default());
        return next.run(req).await;
    }
    let mut found: Option<(Principal, String, bool)> = None;
    if let Some(proxy) = &auth.config.proxy
        && let Some(user) = req
            .headers()
            .get(proxy.user_header.as_str())
            .and_then(|v| v.to_str().ok())
        && let Some(p) = auth.config.proxy_principal(user)
    {
        // The proxy authenticates every request; there is no session to forge.
        found = Some((p, String::new(), false));
    }
    if found.is_none()
        && let Some(id) = cookie(req.headers())
        && let Some(s) = auth.sessions.get(&id)
    {
        found = Some((s.principal, s.csrf, true));
    }
    let Some((principal, csrf, needs_csrf)) = found else {
        if is_public(&path) {
            return next.run(req).await;
        }
        return unauthenticated(
            &path,
            req.uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/"),
        );
    };
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if writes && needs_csrf && path != "/login" {
        match csrf_of(req).await {
            Ok((presented, rebuilt)) if sessions::csrf_matches(&presented, &csrf) => req = rebuilt,
            Ok(_) | Err(_) => {
                return (StatusCode::FORBIDDEN, "missing or invalid CSRF token").into_response();
            }
        }
    }
    req.extensions_mut().insert(principal);
    req.extensions_mut().insert(CsrfToken(csrf));
    next.run(req).await
}

fn unauthenticated(path: &str, target: &str) -> Response {
    if path.starts_with("/api/") || path.ends_with(".csv") || path == "/metrics" {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            "{\"error\":\"authentication required\"}",
        )
            .into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return r;
    }
    Redirect::to(&format!("/login?next={}", encode(target))).into_response()
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| sessions::cookie_value(v).map(str::to_string))
}

/// The presented CSRF token: the header, or the `csrf` field of a small
/// urlencoded form (the body is read and put back).
async fn csrf_of(req: Request) -> Result<(String, Request), ()> {
    if let Some(v) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        let v = v.to_string();
        return Ok((v, req));
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(());
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| ())?;
    let token = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .ok_or(())?;
    Ok((token, Request::from_parts(parts, Body::from(bytes))))
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    pub user: String,
    pub password: String,
    #[serde(default)]
    pub next: String,
}

#[derive(Debug, serde::Deserialize)]
pub struct NextParam {
    #[serde(default)]
    pub next: String,
    #[serde(default)]
    pub failed: Option<u8>,
}

/// Only same-site, absolute paths: never `//host` or a full URL.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

pub async fn login_page(axum::extract::Query(q): axum::extract::Query<NextParam>) -> Html<String> {
    let next = html_escape(safe_next(&q.next));
    let error = if q.failed.is_some() {
        "<p class=\"error\">Wrong user name or password.</p>"
    } else {
        ""
    };
    let css = html_escape(&crate::web::assets::assets().css);
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in · Loupe</title>\
         <link rel=\"stylesheet\" href=\"{css}\"></head><body class=\"login\"><main>\
         <h1>Loupe</h1>{error}<form method=\"post\" action=\"/login\">\
         <label>User <input name=\"user\" autocomplete=\"username\" required></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <input type=\"hidden\" name=\"next\" value=\"{next}\"><button type=\"submit\">Sign in</button></form></main></body></html>"
    ))
}

pub async fn login(
    State(auth): State<Arc<Auth>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    // Per user name, and per client address when a proxy names it.
    let ip_key = format!(
        "ip:{}",
        headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .unwrap_or("direct")
            .trim()
    );
    let user_key = format!("user:{}", form.user);
    let wait = auth.limiter.wait(&ip_key).max(auth.limiter.wait(&user_key));
    if let Some(wait) = wait {
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed sign-ins; try again later",
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let cfg = auth.config.clone();
    let (user, password) = (form.user.clone(), form.password);
    let principal = tokio::task::spawn_blocking(move || cfg.check_password(&user, &password))
        .await
        .ok()
        .flatten();
    let next = safe_next(&form.next).to_string();
    match principal {
        Some(p) => {
            auth.limiter.succeeded(&user_key);
            auth.limiter.succeeded(&ip_key);
            tracing::info!(user = %p.name, role = p.role.as_str(), "signed in");
            let id = auth.sessions.create(p);
            let ttl = Duration::from_secs(auth.config.session_ttl_secs.max(60));
            let mut r = Redirect::to(&next).into_response();
            if let Ok(v) =
                HeaderValue::from_str(&sessions::set_cookie(&id, ttl, auth.config.secure_cookies))
            {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        None => {
            auth.limiter.failed(&user_key);
            auth.limiter.failed(&ip_key);
            tracing::info!("failed sign-in");
            Redirect::to(&format!("/login?failed=1&next={}", encode(&next))).into_response()
        }
    }
}

/// `GET /api/v1/session`: who is signed in, and the CSRF token to send with
/// state-changing requests (`X-CSRF-Token`).
pub async fn session(
    axum::Extension(p): axum::Extension<Principal>,
    axum::Extension(csrf): axum::Extension<CsrfToken>,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "user": p.name,
        "role": p.role.as_str(),
        "tenants": p.tenants,
        "csrf": csrf.0,
    }))
}

/// `GET /account`: the nav's fragment naming the signed-in user with a
/// sign-out form (empty in open mode). Loaded by htmx after the page.
pub async fn account(
    State(auth): State<Arc<Auth>>,
    axum::Extension(p): axum::Extension<Principal>,
    axum::Extension(csrf): axum::Extension<CsrfToken>,
) -> Html<String> {
    if !auth.config.enabled() {
        return Html(String::new());
    }
    let form = if csrf.0.is_empty() {
        String::new()
    } else {
        format!(
            "<form method=\"post\" action=\"/logout\" class=\"signout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Sign out</button></form>",
            html_escape(&csrf.0)
        )
    };
    Html(format!(
        "<span class=\"account\">{} · {}{form}</span>",
        html_escape(&p.name),
        p.role.as_str()
    ))
}

pub async fn logout(State(auth): State<Arc<Auth>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers) {
        auth.sessions.remove(&id);
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&sessions::clear_cookie(auth.config.secure_cookies)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/traces?tenant=acme"), "/traces?tenant=acme");
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil"), "/");
    }
}
