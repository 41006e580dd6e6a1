//! The HTTP face of the error code table: each [`Code`] (defined with the services, in
//! [`crate::service::error`]) gets its status here, in one match, and every failure is sent as
//! the same JSON body: `{"error": {"code": "snake_case", "message": "...", ...details}}`.
//! Service errors name their own code ([`CodedError`]), so they become responses mechanically.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::service::error::{Code, CodedError};

/// The HTTP status of each code (the one table is [`Code::http_status`]).
pub fn status(code: Code) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An API failure: a code from the table, a message for people, and optional details.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub details: Map<String, Value>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.details.insert(key.to_string(), value);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = crate::service::error::error_body(self.code, &self.message, self.details);
        let mut response = (status(self.code), axum::Json(body)).into_response();
        if self.code == Code::Unauthenticated {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Any service error, by the code it names; faults are logged here with their full text, which
/// the client never sees.
impl<E: CodedError> From<E> for ApiError {
    fn from(e: E) -> Self {
        let code = e.code();
        if code.is_fault() {
            tracing::error!(error = %e, code = code.as_str(), "request failed");
        }
        ApiError {
            code,
            message: e.public_message(),
            details: e.details(),
        }
    }
}
