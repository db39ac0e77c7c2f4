//! Errors the HTTP API reports. Each maps to one status and a JSON `{"error": …}` body;
//! nothing internal is ever echoed to the client.

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
    #[error("client does not hold the lock")]
    NotHolder,
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after_ms: Option<u64>,
    },
    #[error("method not allowed")]
    MethodNotAllowed,
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
            | ApiError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::NotHolder => StatusCode::FORBIDDEN,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = LockReply::error(self.to_string());
        match &self {
            ApiError::Unavailable { retry_after_ms, .. } => body.retry_after_ms = *retry_after_ms,
            // Lets clients adapt a long wait to the server's cap without parsing the message.
            ApiError::WaitOutOfRange(max) => {
                body.max_wait_ms = Some(u64::try_from(max.as_millis()).unwrap_or(u64::MAX));
            }
            _ => {}
        }
        let mut response = Reply(self.status(), body).into_response();
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
