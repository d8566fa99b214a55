//! Per-request access: the [`Scoped`] extractor gives a handler the app state
//! narrowed to what the caller may see. The tenant scope every query takes is
//! the intersection of the dashboard's configured tenants and the caller's;
//! a section the caller's role may not open, or a span body finance may not
//! read, answers 404 exactly as a missing page does (no leak of existence).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::{Principal, Section};
use crate::error::DashboardError;
use crate::query::Scope;
use crate::web::{ApiError, AppState, HtmlError};

/// The app state as the current caller may use it.
pub struct Scoped(pub AppState);

fn section_of(path: &str) -> Section {
    let p = path.strip_prefix("/api/v1").unwrap_or(path);
    if p.starts_with("/cost") {
        Section::Cost
    } else if p.starts_with("/drift") {
        Section::Drift
    } else if p.starts_with("/traces") {
        Section::Traces
    } else if p.starts_with("/alerts") {
        Section::Alerts
    } else {
        Section::Overview
    }
}

/// `configured ∩ caller`; `None` on both sides is every tenant.
pub fn intersect(configured: &Scope, principal: &Principal) -> Scope {
    match (&configured.tenants, &principal.tenants) {
        (None, None) => Scope::all(),
        (Some(a), None) => Scope {
            tenants: Some(a.clone()),
        },
        (None, Some(b)) => Scope {
            tenants: Some(b.clone()),
        },
        (Some(a), Some(b)) => Scope {
            tenants: Some(a.iter().filter(|t| b.contains(t)).cloned().collect()),
        },
    }
}

fn hidden(path: &str) -> Response {
    let e = DashboardError::NotFound(if path.starts_with("/api/") {
        path.to_string()
    } else {
        format!("page {path}")
    });
    if path.starts_with("/api/") {
        ApiError(e).into_response()
    } else {
        HtmlError(e).into_response()
    }
}

impl FromRequestParts<AppState> for Scoped {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let path = parts.uri.path().to_string();
        let Some(principal) = parts.extensions.get::<Principal>().cloned() else {
            return Err(hidden(&path));
        };
        if !principal.may_open(section_of(&path)) {
            return Err(hidden(&path));
        }
        let mut s = state.clone();
        s.scope = intersect(&state.scope, &principal);
        Ok(Scoped(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    #[test]
    fn scopes_intersect() {
        let viewer = Principal {
            name: "v".into(),
            role: Role::Viewer,
            tenants: Some(vec!["a".into(), "b".into()]),
        };
        let admin = Principal::anonymous_admin();
        let only_b = Scope {
            tenants: Some(vec!["b".into(), "c".into()]),
        };
        assert_eq!(intersect(&Scope::all(), &admin).tenants, None);
        assert_eq!(intersect(&Scope::all(), &viewer).tenants, viewer.tenants);
        assert_eq!(
            intersect(&only_b, &viewer).tenants,
            Some(vec!["b".to_string()])
        );
        assert_eq!(intersect(&only_b, &admin).tenants, only_b.tenants);
    }

    #[test]
    fn sections_from_paths() {
        assert_eq!(section_of("/cost.csv"), Section::Cost);
        assert_eq!(section_of("/api/v1/traces/ab"), Section::Traces);
        assert_eq!(section_of("/api/v1"), Section::Overview);
        assert_eq!(section_of("/drift"), Section::Drift);
    }
}
