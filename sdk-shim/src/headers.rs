//! Header handling: Loupe's attribution headers, W3C `traceparent`, and what is
//! forwarded in each direction.
//!
//! Invariants: `X-Loupe-*` headers never reach the upstream; hop-by-hop headers are
//! never forwarded; credentials (`Authorization`, `x-api-key`) are forwarded as they
//! came and never read into anything else (no span, no log).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub const X_LOUPE_TENANT: &str = "x-loupe-tenant";
pub const X_LOUPE_FEATURE: &str = "x-loupe-feature";
pub const X_LOUPE_USER: &str = "x-loupe-user";
pub const X_LOUPE_SESSION: &str = "x-loupe-session";
/// The caller's Loupe ingest key (never forwarded, never recorded).
pub const X_LOUPE_KEY: &str = "x-loupe-key";
const X_LOUPE_PREFIX: &str = "x-loupe-";
pub const TRACEPARENT: &str = "traceparent";

/// Longest attribution value kept (longer values are cut at a char boundary).
const MAX_ATTRIBUTION_LEN: usize = 256;

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Who a call is for, from the `X-Loupe-*` headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    pub tenant: Option<String>,
    pub feature: Option<String>,
    pub user: Option<String>,
    pub session: Option<String>,
}

impl Attribution {
    pub fn from_headers(h: &HeaderMap) -> Attribution {
        let get = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| cut(v, MAX_ATTRIBUTION_LEN).to_owned())
        };
        Attribution {
            tenant: get(X_LOUPE_TENANT),
            feature: get(X_LOUPE_FEATURE),
            user: get(X_LOUPE_USER),
            session: get(X_LOUPE_SESSION),
        }
    }
}

impl Attribution {
    /// The tenant a key proved replaces whatever the headers claimed.
    pub fn with_tenant(mut self, tenant: Option<String>) -> Self {
        if tenant.is_some() {
            self.tenant = tenant;
        }
        self
    }
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The caller's span, from a W3C `traceparent` header (version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceParent {
    pub fn from_headers(h: &HeaderMap) -> Option<TraceParent> {
        let v = h.get(TRACEPARENT)?.to_str().ok()?.trim();
        let mut parts = v.split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id: [u8; 16] = hex_bytes(trace)?;
        let span_id: [u8; 8] = hex_bytes(span)?;
        let flags: [u8; 1] = hex_bytes(flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            sampled: flags[0] & 1 == 1,
        })
    }
}

fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N
        || !s
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn is_hop_by_hop(name: &HeaderName, connection_listed: &[String]) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || connection_listed.iter().any(|c| c == name.as_str())
}

fn connection_listed(h: &HeaderMap) -> Vec<String> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Headers for the upstream request. `capture` asks the upstream for an identity
/// encoding, so the accumulator can read the bytes the client receives.
pub fn upstream_request_headers(src: &HeaderMap, capture: bool) -> HeaderMap {
    let listed = connection_listed(src);
    let mut out = HeaderMap::with_capacity(src.len());
    for (name, value) in src {
        if is_hop_by_hop(name, &listed)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name.as_str().starts_with(X_LOUPE_PREFIX)
            || (capture && name == header::ACCEPT_ENCODING)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if capture {
        out.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    out
}

/// Headers for the client response: the upstream's, minus hop-by-hop ones (and the
/// length when the shim changes the body).
pub fn client_response_headers(src: &HeaderMap, body_changed: bool) -> HeaderMap {
    let listed = connection_listed(src);
    let mut out = HeaderMap::with_capacity(src.len());
    for (name, value) in src {
        if is_hop_by_hop(name, &listed) || (body_changed && name == header::CONTENT_LENGTH) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn loupe_and_hop_headers_never_reach_the_upstream() {
        let h = map(&[
            ("authorization", "Bearer sk-test"),
            ("x-loupe-tenant", "acme"),
            ("x-loupe-whatever", "1"),
            ("connection", "keep-alive, x-custom"),
            ("x-custom", "drop me"),
            ("host", "127.0.0.1:4000"),
            ("accept-encoding", "gzip"),
            ("content-type", "application/json"),
        ]);
        let out = upstream_request_headers(&h, true);
        assert_eq!(out.get("authorization").unwrap(), "Bearer sk-test");
        assert_eq!(out.get("accept-encoding").unwrap(), "identity");
        assert_eq!(out.get("content-type").unwrap(), "application/json");
        for gone in [
            "x-loupe-tenant",
            "x-loupe-whatever",
            "connection",
            "x-custom",
            "host",
        ] {
            assert!(out.get(gone).is_none(), "{gone}");
        }
        let passthrough = upstream_request_headers(&h, false);
        assert_eq!(passthrough.get("accept-encoding").unwrap(), "gzip");
    }

    #[test]
    fn attribution_from_headers() {
        let a = Attribution::from_headers(&map(&[
            ("x-loupe-tenant", " acme "),
            ("x-loupe-feature", "search"),
            ("x-loupe-session", ""),
        ]));
        assert_eq!(a.tenant.as_deref(), Some("acme"));
        assert_eq!(a.feature.as_deref(), Some("search"));
        assert_eq!(a.user, None);
        assert_eq!(a.session, None);
    }

    #[test]
    fn traceparent_parsing() {
        let ok = map(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )]);
        let tp = TraceParent::from_headers(&ok).unwrap();
        assert_eq!(tp.trace_id[0], 0x4b);
        assert_eq!(tp.span_id[7], 0xb7);
        assert!(tp.sampled);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            let h = map(&[("traceparent", bad)]);
            assert!(TraceParent::from_headers(&h).is_none(), "{bad}");
        }
    }
}
