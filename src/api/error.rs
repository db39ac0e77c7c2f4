//! Errors the HTTP API reports. Each maps to one status and a JSON `{"error": …}` body;
//! nothing internal is ever echoed to the client.
//!
//! Replies also carry, as response extensions, why a request was refused ([`ErrorReason`],
//! [`Refusal`]), for the metrics layer to count without parsing bodies.

use super::Reply;
use super::wire::LockReply;
use crate::engine::TtlOutOfRange;
use crate::time::Compact;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("client parameter required")]
    MissingClient,
    #[error("invalid ttl format")]
    InvalidTtl,
    #[error(transparent)]
    TtlOutOfRange(#[from] TtlOutOfRange),
    #[error("invalid wait format")]
    InvalidWait,
    #[error("wait must be at least 0 and at most {}", Compact(*.0))]
    WaitOutOfRange(Duration),
    #[error("invalid {param} parameter: {reason}")]
    InvalidName { param: &'static str, reason: String },
    #[error("invalid query string: {0}")]
    InvalidQuery(String),
    #[error("job parameter required")]
    MissingJob,
    #[error("client does not hold the lock")]
    NotHolder,
    /// An admin action from a caller [`super::admin::admin_allowed`] refuses.
    #[error("force release is only allowed from the server's own machine or with the auth token")]
    AdminOnly,
    /// A force release of a job nobody holds.
    #[error("no lock held")]
    NotHeld,
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after_ms: Option<u64>,
    },
    #[error(
        "this server requires its access token: send `Authorization: Bearer <token>` \
         (the CLI sends FOOLOCK_AUTH_TOKEN or the config file's auth_token)"
    )]
    Unauthorized,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the request URI is longer than {0} bytes")]
    UriTooLong(usize),
    #[error("not found")]
    NotFound,
    #[error("request timed out")]
    Timeout,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingClient
            | ApiError::InvalidTtl
            | ApiError::TtlOutOfRange(_)
            | ApiError::InvalidWait
            | ApiError::WaitOutOfRange(_)
            | ApiError::InvalidName { .. }
            | ApiError::InvalidQuery(_)
            | ApiError::MissingJob => StatusCode::BAD_REQUEST,
            ApiError::NotHolder | ApiError::AdminOnly => StatusCode::FORBIDDEN,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotHeld => StatusCode::NOT_FOUND,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// Why, in words a dashboard can group by: a fixed string per variant.
    pub(crate) fn reason(&self) -> ErrorReason {
        ErrorReason(match self {
            ApiError::MissingClient => "missing_client",
            ApiError::InvalidTtl => "invalid_ttl",
            ApiError::TtlOutOfRange(_) => "ttl_out_of_range",
            ApiError::InvalidWait => "invalid_wait",
            ApiError::WaitOutOfRange(_) => "wait_out_of_range",
            ApiError::InvalidName { .. } => "invalid_name",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::MissingJob => "missing_job",
            ApiError::NotHolder => "not_holder",
            ApiError::AdminOnly => "admin_only",
            ApiError::NotHeld => "not_held",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Unauthorized => "unauthorized",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::UriTooLong(_) => "uri_too_long",
            ApiError::NotFound => "not_found",
            ApiError::Timeout => "timeout",
        })
    }
}

/// A response extension saying why a request was refused, e.g. `invalid_ttl`. Always a fixed
/// string, so it can become a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorReason(pub &'static str);

/// A response extension on a 409 `POST /lock`: why the job was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Held by another client.
    Held,
    /// In its grace period, reserved for its holder.
    Grace,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = LockReply::error(self.to_string());
        match &self {
            // As a release of a free job says: scripts test `success`.
            ApiError::NotHeld => body.success = Some(false),
            ApiError::Unavailable { retry_after_ms, .. } => body.retry_after_ms = *retry_after_ms,
            // Lets clients adapt a long wait to the server's cap without parsing the message.
            ApiError::WaitOutOfRange(max) => {
                body.max_wait_ms = Some(u64::try_from(max.as_millis()).unwrap_or(u64::MAX));
            }
            _ => {}
        }
        let mut response = Reply(self.status(), body).into_response();
        response.extensions_mut().insert(self.reason());
        if let ApiError::Unauthorized = self {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if let ApiError::Unavailable {
            retry_after_ms: Some(ms),
            ..
        } = self
        {
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(v) = secs.to_string().parse() {
                response.headers_mut().insert("retry-after", v);
            }
        }
        response
    }
}
