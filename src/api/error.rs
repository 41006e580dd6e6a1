//! The one table of API error codes, and the JSON error body every failure uses:
//! `{"error": {"code": "snake_case", "message": "...", ...details}}`.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::service::enrol::EnrolError;
use crate::service::events::IngestError;
use crate::service::randomised_in_error::MarkError;
use crate::store::StoreError;

/// Every error code the API returns. Codes are stable: clients branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: the body is not valid JSON.
    MalformedJson,
    /// 400: a query parameter is malformed.
    InvalidQuery,
    /// 401: no bearer token, or an unknown or revoked one.
    Unauthenticated,
    /// 403: the token's role or scope does not allow this.
    Forbidden,
    /// 404: no such trial served here.
    TrialNotFound,
    /// 404: no enrolment with that record id (visible to this token).
    EnrolmentNotFound,
    /// 404: no such route.
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 409: the subject was randomised under another record.
    AlreadyRandomised,
    /// 409: the record id was submitted before with a different body.
    RecordConflict,
    /// 409: the trial is not recruiting.
    TrialNotActive,
    /// 409: the patient's cluster was randomised to an arm a protocol amendment has closed.
    ClusterArmClosed,
    /// 409: the allocation is already marked randomised in error.
    AlreadyMarkedInError,
    /// 413: the body is larger than the limit.
    PayloadTooLarge,
    /// 415: the body is not declared as `application/json`.
    UnsupportedMediaType,
    /// 422: the patient does not meet the eligibility criteria (recorded in the screening log).
    NotEligible,
    /// 422: a field is missing, of the wrong type or out of range.
    InvalidEnrolment,
    /// 422: the body of a request other than an enrolment is invalid (each field named).
    InvalidRequest,
    /// 422: rows of an event batch are invalid (each listed); nothing was stored.
    InvalidEvents,
    /// 409: event ids of the batch were stored before with other content; nothing was stored.
    EventConflict,
    /// 500: a fault on our side; details are in the server log.
    Internal,
    /// 503: the database cannot be reached.
    Unavailable,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            MalformedJson | InvalidQuery => StatusCode::BAD_REQUEST,
            Unauthenticated => StatusCode::UNAUTHORIZED,
            Forbidden => StatusCode::FORBIDDEN,
            TrialNotFound | EnrolmentNotFound | NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AlreadyRandomised | RecordConflict | TrialNotActive | ClusterArmClosed
            | AlreadyMarkedInError | EventConflict => StatusCode::CONFLICT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            NotEligible | InvalidEnrolment | InvalidRequest | InvalidEvents => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            MalformedJson => "malformed_json",
            InvalidQuery => "invalid_query",
            Unauthenticated => "unauthenticated",
            Forbidden => "forbidden",
            TrialNotFound => "trial_not_found",
            EnrolmentNotFound => "enrolment_not_found",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            AlreadyRandomised => "already_randomised",
            RecordConflict => "record_conflict",
            TrialNotActive => "trial_not_active",
            ClusterArmClosed => "cluster_arm_closed",
            AlreadyMarkedInError => "already_marked_in_error",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            NotEligible => "not_eligible",
            InvalidEnrolment => "invalid_enrolment",
            InvalidRequest => "invalid_request",
            InvalidEvents => "invalid_events",
            EventConflict => "event_conflict",
            Internal => "internal",
            Unavailable => "unavailable",
        }
    }
}

/// An API failure: a code from the table, a message for people, and optional details.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Map<String, Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
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
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code.as_str()));
        error.insert("message".into(), json!(self.message));
        error.extend(self.details);
        let mut response =
            (self.code.status(), axum::Json(json!({ "error": error }))).into_response();
        if self.code == ErrorCode::Unauthenticated {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match &rejection {
            JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
            JsonRejection::JsonSyntaxError(_) => ErrorCode::MalformedJson,
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            _ => ErrorCode::MalformedJson,
        };
        ApiError::new(code, rejection.body_text())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the database is unavailable; retry later",
                )
            }
            _ => {
                tracing::error!(error = %e, "internal error");
                ApiError::new(ErrorCode::Internal, "internal error; see the server log")
            }
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let message = e.to_string();
        match e {
            IngestError::Forbidden(_) => ApiError::new(ErrorCode::Forbidden, message),
            IngestError::Invalid(rows) => ApiError::new(ErrorCode::InvalidEvents, message)
                .with("rows", serde_json::to_value(rows).unwrap_or(Value::Null)),
            IngestError::Conflict(rows) => ApiError::new(ErrorCode::EventConflict, message)
                .with("rows", serde_json::to_value(rows).unwrap_or(Value::Null)),
            IngestError::Store(e) => e.into(),
        }
    }
}

impl From<EnrolError> for ApiError {
    fn from(e: EnrolError) -> Self {
        let message = e.to_string();
        match e {
            EnrolError::TrialNotFound(_) => ApiError::new(ErrorCode::TrialNotFound, message),
            EnrolError::Forbidden(_) => ApiError::new(ErrorCode::Forbidden, message),
            EnrolError::Invalid(fields) => ApiError::new(ErrorCode::InvalidEnrolment, message)
                .with(
                    "fields",
                    serde_json::to_value(fields).unwrap_or(Value::Null),
                ),
            EnrolError::NotEligible { reasons } => {
                ApiError::new(ErrorCode::NotEligible, message).with("reasons", reasons)
            }
            EnrolError::AlreadyRandomised { record_id, .. } => {
                ApiError::new(ErrorCode::AlreadyRandomised, message)
                    .with("record_id", json!(record_id))
            }
            EnrolError::RecordConflict(_) => ApiError::new(ErrorCode::RecordConflict, message),
            EnrolError::TrialNotActive { .. } => ApiError::new(ErrorCode::TrialNotActive, message),
            EnrolError::ClusterArmClosed { .. } => {
                ApiError::new(ErrorCode::ClusterArmClosed, message)
            }
            EnrolError::Unavailable => ApiError::new(ErrorCode::Unavailable, message),
            EnrolError::Store(e) => e.into(),
        }
    }
}

impl From<MarkError> for ApiError {
    fn from(e: MarkError) -> Self {
        let message = e.to_string();
        match e {
            MarkError::TrialNotFound(_) => ApiError::new(ErrorCode::TrialNotFound, message),
            MarkError::EnrolmentNotFound { .. } => {
                ApiError::new(ErrorCode::EnrolmentNotFound, message)
            }
            MarkError::AlreadyMarked { marked_at, .. } => {
                ApiError::new(ErrorCode::AlreadyMarkedInError, message)
                    .with("marked_at", json!(marked_at))
            }
            MarkError::Invalid(fields) => ApiError::new(ErrorCode::InvalidRequest, message).with(
                "fields",
                serde_json::to_value(fields).unwrap_or(Value::Null),
            ),
            MarkError::Store(e) => e.into(),
        }
    }
}
