//! Static assets compiled into the binary: the vendored htmx (pinned, see
//! `static/README.md`) and the stylesheet, served under content-addressed
//! names with a one-year immutable cache.

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderValue, Response, StatusCode, header};

/// The pinned htmx release (must match `static/README.md`).
pub const HTMX_VERSION: &str = "2.0.11";
const HTMX: &[u8] = include_bytes!("../../static/htmx.min.js");
const CSS: &str = include_str!("../../static/loupe.css");
const FAVICON: &str = include_str!("../../static/favicon.svg");

/// URLs of the assets, for templates.
#[derive(Debug, Clone)]
pub struct Assets {
    pub htmx: String,
    pub css: String,
    pub favicon: String,
}

/// FNV-1a: a stable content hash for cache-busting names (not security).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

pub fn assets() -> &'static Assets {
    static A: OnceLock<Assets> = OnceLock::new();
    A.get_or_init(|| Assets {
        htmx: format!("/static/htmx-{HTMX_VERSION}.min.js"),
        css: format!("/static/loupe-{:012x}.css", fnv(CSS.as_bytes()) >> 16),
        favicon: format!("/static/favicon-{:08x}.svg", fnv(FAVICON.as_bytes()) >> 32),
    })
}

pub async fn serve(Path(file): Path<String>) -> Response<Body> {
    let a = assets();
    let path = format!("/static/{file}");
    let (body, ctype): (Body, &str) = if path == a.htmx {
        (Body::from(HTMX), "text/javascript; charset=utf-8")
    } else if path == a.css {
        (Body::from(CSS), "text/css; charset=utf-8")
    } else if path == a.favicon {
        (Body::from(FAVICON), "image/svg+xml")
    } else {
        let mut r = Response::new(Body::from("not found"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    r
}
