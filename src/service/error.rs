//! The one table of error codes, and how each service error names its own.
//!
//! Register hosts and other clients branch on these codes, so they are stable: a code is added,
//! never renamed. Every service error implements [`CodedError`] next to its definition (as
//! meilisearch's errors do), so an interface maps any of them mechanically: the HTTP API turns a
//! [`Code`] into a status in one match (`api::error`), and nothing else decides what a failure
//! means to a client.

use serde_json::{Map, Value};

use crate::store::StoreError;

/// Every error code a client can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The body is not valid JSON.
    MalformedJson,
    /// A query parameter is malformed.
    InvalidQuery,
    /// No bearer token, or an unknown or revoked one.
    Unauthenticated,
    /// The token's role or scope does not allow this.
    Forbidden,
    /// No such trial served here.
    TrialNotFound,
    /// No enrolment with that record id (visible to this token).
    EnrolmentNotFound,
    /// No such route.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The subject was randomised under another record.
    AlreadyRandomised,
    /// The record id was submitted before with a different body.
    RecordConflict,
    /// The trial is not recruiting.
    TrialNotActive,
    /// The patient's cluster was randomised to an arm a protocol amendment has closed.
    ClusterArmClosed,
    /// The allocation is already marked randomised in error.
    AlreadyMarkedInError,
    /// The token was revoked before.
    AlreadyRevoked,
    /// The body is larger than the limit.
    PayloadTooLarge,
    /// The body is not declared as `application/json`.
    UnsupportedMediaType,
    /// The patient does not meet the eligibility criteria (recorded in the screening log).
    NotEligible,
    /// A field of an enrolment is missing, of the wrong type or out of range.
    InvalidEnrolment,
    /// The body of a request other than an enrolment is invalid (each field named).
    InvalidRequest,
    /// Rows of an event batch are invalid (each listed); nothing was stored.
    InvalidEvents,
    /// Event ids of the batch were stored before with other content; nothing was stored.
    EventConflict,
    /// The client presented too many unknown tokens; it may try again later.
    TooManyRequests,
    /// The request took longer than the server allows (a body sent too slowly, say).
    RequestTimeout,
    /// A page's form was posted from another site.
    CrossSiteRequest,
    /// A CloudEvent's envelope breaks the specification or names no type rrct receives (each
    /// attribute named).
    InvalidCloudEvent,
    /// A CloudEvent's source and id were received before with other content.
    CloudEventConflict,
    /// A fault on our side; details are in the server log.
    Internal,
    /// The database cannot be reached.
    Unavailable,
    /// The trial is paused by its admins (lifecycle): no enrolment until it is resumed.
    TrialPaused,
    /// The trial is closed by its admins (lifecycle), for good.
    TrialClosed,
    /// The enrolment's site is closed to enrolment.
    SiteClosed,
    /// No such site in the trial.
    SiteNotFound,
    /// A lifecycle change that the trial's or the site's current status does not allow.
    InvalidTransition,
    /// The master seed can be revealed only once the trial is closed.
    TrialNotClosed,
    /// The patient is on the trial's objection (opt-out) list: never randomised (recorded in
    /// the screening log).
    Objected,
    /// The enrolment has already withdrawn to this scope or a wider one.
    AlreadyWithdrawn,
    /// The protocol does not let a patient withdraw the use of collected data.
    DataUseWithdrawalNotAllowed,
    /// The enrolment's consent was not deferred: there is nothing to confirm.
    ConsentNotDeferred,
    /// The deferred consent was confirmed before.
    ConsentAlreadyConfirmed,
}

impl Code {
    /// The code as clients see it.
    pub fn as_str(self) -> &'static str {
        use Code::*;
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
            AlreadyRevoked => "already_revoked",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            NotEligible => "not_eligible",
            InvalidEnrolment => "invalid_enrolment",
            InvalidRequest => "invalid_request",
            InvalidEvents => "invalid_events",
            EventConflict => "event_conflict",
            TooManyRequests => "too_many_requests",
            RequestTimeout => "request_timeout",
            CrossSiteRequest => "cross_site_request",
            InvalidCloudEvent => "invalid_cloudevent",
            CloudEventConflict => "cloudevent_conflict",
            Internal => "internal",
            Unavailable => "unavailable",
            TrialPaused => "trial_paused",
            TrialClosed => "trial_closed",
            SiteClosed => "site_closed",
            SiteNotFound => "site_not_found",
            InvalidTransition => "invalid_transition",
            TrialNotClosed => "trial_not_closed",
            Objected => "objected",
            AlreadyWithdrawn => "already_withdrawn",
            DataUseWithdrawalNotAllowed => "data_use_withdrawal_not_allowed",
            ConsentNotDeferred => "consent_not_deferred",
            ConsentAlreadyConfirmed => "consent_already_confirmed",
        }
    }

    /// A fault of the engine or its database rather than of the request: logged where it is
    /// answered, and never explained to the client beyond its code.
    pub fn is_fault(self) -> bool {
        matches!(self, Code::Internal | Code::Unavailable)
    }

    /// The HTTP status of the code: the API answers with it, and the bus's replies carry it in
    /// their `Rrct-Status` header, so both speak one table.
    pub fn http_status(self) -> u16 {
        use Code::*;
        match self {
            MalformedJson | InvalidQuery | InvalidCloudEvent => 400,
            Unauthenticated => 401,
            Forbidden | CrossSiteRequest => 403,
            TrialNotFound | EnrolmentNotFound | NotFound | SiteNotFound => 404,
            MethodNotAllowed => 405,
            RequestTimeout => 408,
            AlreadyRandomised
            | RecordConflict
            | TrialNotActive
            | ClusterArmClosed
            | AlreadyMarkedInError
            | AlreadyRevoked
            | EventConflict
            | CloudEventConflict
            | TrialPaused
            | TrialClosed
            | SiteClosed
            | InvalidTransition
            | TrialNotClosed
            | AlreadyWithdrawn
            | ConsentNotDeferred
            | ConsentAlreadyConfirmed => 409,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            NotEligible
            | InvalidEnrolment
            | InvalidRequest
            | InvalidEvents
            | Objected
            | DataUseWithdrawalNotAllowed => 422,
            TooManyRequests => 429,
            Internal => 500,
            Unavailable => 503,
        }
    }

    /// Every code.
    pub const ALL: [Code; 39] = [
        Code::MalformedJson,
        Code::InvalidQuery,
        Code::Unauthenticated,
        Code::Forbidden,
        Code::TrialNotFound,
        Code::EnrolmentNotFound,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::AlreadyRandomised,
        Code::RecordConflict,
        Code::TrialNotActive,
        Code::ClusterArmClosed,
        Code::AlreadyMarkedInError,
        Code::AlreadyRevoked,
        Code::PayloadTooLarge,
        Code::UnsupportedMediaType,
        Code::NotEligible,
        Code::InvalidEnrolment,
        Code::InvalidRequest,
        Code::InvalidEvents,
        Code::EventConflict,
        Code::TooManyRequests,
        Code::RequestTimeout,
        Code::CrossSiteRequest,
        Code::InvalidCloudEvent,
        Code::CloudEventConflict,
        Code::Internal,
        Code::Unavailable,
        Code::TrialPaused,
        Code::TrialClosed,
        Code::SiteClosed,
        Code::SiteNotFound,
        Code::InvalidTransition,
        Code::TrialNotClosed,
        Code::Objected,
        Code::AlreadyWithdrawn,
        Code::DataUseWithdrawalNotAllowed,
        Code::ConsentNotDeferred,
        Code::ConsentAlreadyConfirmed,
    ];
}

/// The error body every interface sends: `{"error": {"code", "message", ...details}}`.
pub fn error_body(code: Code, message: &str, details: Map<String, Value>) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), Value::String(code.as_str().into()));
    error.insert("message".into(), Value::String(message.into()));
    error.extend(details);
    let mut body = Map::new();
    body.insert("error".into(), Value::Object(error));
    Value::Object(body)
}

/// A service error that names its code, the message a client may read and the details that go
/// with it (`fields`, `rows`, `reasons`, ...).
pub trait CodedError: std::fmt::Display {
    fn code(&self) -> Code;

    /// What the client reads; the error's own text unless it would reveal internals.
    fn public_message(&self) -> String {
        self.to_string()
    }

    /// Machine-readable details beside the message.
    fn details(&self) -> Map<String, Value> {
        Map::new()
    }
}

/// One detail entry, for [`CodedError::details`].
pub fn detail(key: &str, value: impl serde::Serialize) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(
        key.to_string(),
        serde_json::to_value(value).unwrap_or(Value::Null),
    );
    map
}

/// Whether a database refused a write because it cannot take one now: a read-only file or
/// server, a full disk (SQLite's READONLY and FULL families; PostgreSQL's read-only
/// transaction, disk full and server shutdown states).
fn cannot_write_now(e: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = e.code() else {
        return false;
    };
    // PostgreSQL's SQLSTATEs first: five characters, some of them all digits.
    matches!(&*code, "25006" | "53100" | "57P01" | "57P02" | "57P03")
        || (code.len() < 5 && code.parse::<u32>().is_ok_and(|n| matches!(n % 256, 8 | 13)))
}

impl CodedError for StoreError {
    fn code(&self) -> Code {
        match self {
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed,
            ) => Code::Unavailable,
            StoreError::Database(sqlx::Error::Database(e)) if cannot_write_now(e.as_ref()) => {
                Code::Unavailable
            }
            _ => Code::Internal,
        }
    }

    fn public_message(&self) -> String {
        match self.code() {
            Code::Unavailable => "the database is unavailable; retry later".into(),
            _ => "internal error; see the server log".into(),
        }
    }
}

impl CodedError for crate::endpoints::CutoffError {
    fn code(&self) -> Code {
        Code::InvalidQuery
    }
}
