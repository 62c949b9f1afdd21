//! The API's one error type. Client mistakes carry the problem to show;
//! everything else is `Internal`: logged here, answered as a bland 500.

use axum::response::{IntoResponse, Response};
use herald_platform::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{}", .0.title)]
    Client(Problem),
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// The event log has no partition for new events: the worker makes
    /// them ahead, so it has not run for a long while.
    #[error("no event log partition: {0}")]
    NoPartition(sqlx::Error),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        Self::Client(p)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            // Postgres is down or restarting: the client should retry.
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => Self::Unavailable(e),
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")) =>
            {
                Self::Unavailable(e)
            }
            // "no partition of relation events found for row".
            sqlx::Error::Database(db)
                if db.code().as_deref() == Some("23514") && db.table().is_some_and(|t| t == "events") =>
            {
                Self::NoPartition(e)
            }
            _ => Self::Internal(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(format!("json: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Client(p) => p.into_response(),
            Self::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                Problem::unavailable("the database is unavailable; retry shortly", 2).into_response()
            }
            Self::NoPartition(e) => {
                tracing::error!(error = %e, "no partition of the event log takes new events: is herald-worker running?");
                Problem::unavailable(
                    "the event log has no partition for new events; herald-worker makes them ahead: start it",
                    5,
                )
                .into_response()
            }
            Self::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                Problem::internal().into_response()
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
