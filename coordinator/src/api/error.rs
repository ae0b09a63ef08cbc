//! The API's one error type and its mapping to HTTP.
//!
//! Every refusal is a JSON body `{"error": {"code", "message", "field"?}}`:
//! `code` is stable and machine-readable, `message` is written for the
//! person reading it, `field` names the offending parameter when there is
//! one. Client mistakes are 4xx; 5xx is only for the coordinator's own
//! trouble (the store or the queue unreachable: 503, retry later).

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON body of every error answer.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `invalid_parameter`, `not_found`, `rate_limited`.
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
    /// The parameter or body field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Why a request was not answered with what it asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A parameter, path segment or body field is malformed (400).
    #[error("invalid `{field}`: {message}")]
    InvalidParameter { field: String, message: String },
    /// The body is not what the route takes (400, 413 or 415).
    #[error("{message}")]
    BadBody { status: u16, message: String },
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// No such route or method (404 / 405).
    #[error("{message}")]
    NoRoute { status: u16, message: String },
    /// The query string or URI is longer than the limit (414).
    #[error("the query string is longer than {limit} bytes")]
    UriTooLong { limit: usize },
    /// Missing or wrong bearer token (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The route is switched off (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request body did not arrive within the body timeout (408; the
    /// connection is closed).
    #[error("the request body did not arrive within {} s", after.as_secs_f64())]
    BodyTimeout { after: Duration },
    /// This client sent too many requests (429).
    #[error("too many requests from this address: retry after {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    /// A backend (store, queue) is unreachable: the coordinator's problem, retry later (503).
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidParameter {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        let code = match self {
            Self::InvalidParameter { .. } => 400,
            Self::BadBody { status, .. } | Self::NoRoute { status, .. } => *status,
            Self::NotFound(_) => 404,
            Self::UriTooLong { .. } => 414,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::BodyTimeout { .. } => 408,
            Self::RateLimited { .. } => 429,
            Self::Unavailable(_) => 503,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidParameter { .. } => "invalid_parameter",
            Self::BadBody { status: 413, .. } => "body_too_large",
            Self::BadBody { status: 415, .. } => "unsupported_media_type",
            Self::BadBody { .. } => "invalid_body",
            Self::NotFound(_) => "not_found",
            Self::NoRoute { status: 405, .. } => "method_not_allowed",
            Self::NoRoute { .. } => "no_route",
            Self::UriTooLong { .. } => "uri_too_long",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
        }
    }

    pub fn body(&self) -> ErrorBody {
        let (field, message) = match self {
            Self::InvalidParameter { field, message } => (Some(field.clone()), message.clone()),
            other => (None, other.to_string()),
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
                field,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::BodyTimeout { .. } => {
                // The rest of the body may still come; the connection is not reusable.
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Self::RateLimited { retry_after } => {
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {}
        }
        response
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        let status = rejection.status().as_u16();
        // 422 (valid JSON, wrong shape) is a 400 here: one code for a bad body.
        let status = if matches!(status, 413 | 415) {
            status
        } else {
            400
        };
        Self::BadBody {
            status,
            message: rejection.body_text(),
        }
    }
}

impl From<common::store::StoreError> for ApiError {
    fn from(e: common::store::StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<common::queue::QueueError> for ApiError {
    fn from(e: common::queue::QueueError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let e = ApiError::invalid("hotkey", "too long");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let body = serde_json::to_value(e.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "invalid_parameter", "message": "too long", "field": "hotkey"}})
        );
        let e = ApiError::RateLimited {
            retry_after: Duration::from_millis(200),
        };
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        let response = e.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            ApiError::Unauthorized("x").into_response().headers()[header::WWW_AUTHENTICATE],
            "Bearer"
        );
        assert_eq!(
            ApiError::BadBody {
                status: 413,
                message: "big".into()
            }
            .code(),
            "body_too_large"
        );
    }
}
