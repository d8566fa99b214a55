//! The dashboard's closed error enum and the one table mapping it to HTTP.
//!
//! Invariants: a client mistake (a bad query parameter, an unknown trace) is a
//! 4xx with a message written for the user; a store failure is a 5xx whose
//! internal text is logged once here and never sent to the client.

use axum::http::StatusCode;

use crate::query::QueryError;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A query parameter that cannot be used; the message says which and why.
    #[error("invalid parameter `{name}`: {reason}")]
    BadParam { name: String, reason: String },
    /// Nothing with that id (or not visible to this user).
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A template failed to render (a bug, not the user's fault).
    #[error("rendering failed: {0}")]
    Render(String),
}

impl DashboardError {
    pub fn bad(name: &str, reason: impl Into<String>) -> Self {
        DashboardError::BadParam {
            name: name.to_string(),
            reason: reason.into(),
        }
    }

    /// The one mapping from error to status.
    pub fn status(&self) -> StatusCode {
        match self {
            DashboardError::BadParam { .. } => StatusCode::BAD_REQUEST,
            DashboardError::NotFound(_) => StatusCode::NOT_FOUND,
            DashboardError::Query(QueryError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            DashboardError::Query(QueryError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            DashboardError::Query(QueryError::Failed(_)) | DashboardError::Render(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// What the client is told. Server-side failures say only what kind of
    /// failure it was; the details go to the log (see [`Self::log`]).
    pub fn public_message(&self) -> String {
        match self {
            DashboardError::BadParam { .. } | DashboardError::NotFound(_) => self.to_string(),
            DashboardError::Query(QueryError::Timeout) => {
                "the query took too long; narrow the time range or the filters".to_string()
            }
            DashboardError::Query(QueryError::Unavailable(_)) => {
                "the store is not answering right now; try again shortly".to_string()
            }
            DashboardError::Query(QueryError::Failed(_)) | DashboardError::Render(_) => {
                "internal error (logged on the server)".to_string()
            }
        }
    }

    /// Logs server-side failures once, at the edge.
    pub fn log(&self) {
        if self.status().is_server_error() {
            tracing::error!(error = %self, "dashboard request failed");
        }
    }
}

impl From<askama::Error> for DashboardError {
    fn from(e: askama::Error) -> Self {
        DashboardError::Render(e.to_string())
    }
}
