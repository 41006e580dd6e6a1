//! What a reader does from a trial's page: an admin pauses, resumes or closes the trial or
//! marks an allocation randomised in error; the on-call unblinder breaks the blind of one
//! subject. Each goes through the same service function as the API (which decides who may),
//! with the session's actor — `person:SUBJECT (NAME)` for a person signed in through OpenID
//! Connect — in the change's record and its audit entry. Every form here is refused when
//! another site posts it.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::session::{cross_site, SignedIn};
use super::{html, message, refused, sentence, unavailable, Dashboard};
use crate::service::error::{Code, CodedError};
use crate::service::{lifecycle, randomised_in_error, unblinding};

fn refuse_cross_site() -> Response {
    tracing::warn!("a cross-site form post was refused");
    message(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form was sent from another site and was refused.".into(),
    )
}

/// A service's refusal of a page action, worded for the reader.
fn not_done(e: &dyn CodedError, trial: &str) -> Response {
    match e.code() {
        Code::TrialNotFound | Code::Forbidden | Code::Unavailable => refused(e, trial),
        Code::Internal => unavailable(&e.to_string()),
        _ => message(
            StatusCode::BAD_REQUEST,
            "Not accepted",
            sentence(&e.public_message()),
        ),
    }
}

#[derive(Debug, Deserialize)]
pub struct LifecycleForm {
    change: String,
    reason: String,
}

/// `POST /trials/{trial}/lifecycle` (`change` = pause, resume or close; `reason`).
pub async fn lifecycle_change(
    State(state): State<Dashboard>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
    Path(trial): Path<String>,
    Form(form): Form<LifecycleForm>,
) -> Response {
    if cross_site(&headers) {
        return refuse_cross_site();
    }
    let change = match form.change.as_str() {
        "pause" => lifecycle::Change::Pause,
        "resume" => lifecycle::Change::Resume,
        "close" => lifecycle::Change::Close,
        other => {
            return message(
                StatusCode::BAD_REQUEST,
                "Not accepted",
                format!(
                    "`{}` is not a change: pause, resume or close.",
                    other.escape_debug()
                ),
            )
        }
    };
    let body = serde_json::json!({ "reason": form.reason });
    match lifecycle::change_for(&state.app, &session.principal, &trial, change, None, &body).await {
        Ok(_) => Redirect::to(&format!("/trials/{trial}")).into_response(),
        Err(e) => not_done(&e, &trial),
    }
}

#[derive(Debug, Deserialize)]
pub struct MarkForm {
    record_id: String,
    reason: String,
}

/// `POST /trials/{trial}/randomised-in-error` (`record_id`, `reason`).
pub async fn mark_in_error(
    State(state): State<Dashboard>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
    Path(trial): Path<String>,
    Form(form): Form<MarkForm>,
) -> Response {
    if cross_site(&headers) {
        return refuse_cross_site();
    }
    let body = serde_json::json!({ "reason": form.reason });
    match randomised_in_error::mark_for(
        &state.app,
        &session.principal,
        &trial,
        &form.record_id,
        &body,
    )
    .await
    {
        Ok(marked) => message(
            StatusCode::OK,
            "Marked randomised in error",
            format!(
                "Record {} (randomisation number {}) is marked randomised in error.",
                marked.record_id, marked.randomisation_number
            ),
        ),
        Err(e) => not_done(&e, &trial),
    }
}

#[derive(Debug, Deserialize)]
pub struct UnblindForm {
    record_id: String,
    reason: String,
    /// The person asking, for a session from a token; a person signed in is named by their ID
    /// token, whatever the form says.
    person: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/unblinded_subject.html")]
struct UnblindedSubject {
    trial_id: String,
    answer: unblinding::Unblinded,
}

/// `POST /trials/{trial}/unblind` (`record_id`, `reason`, and `person` for a token's session).
pub async fn unblind(
    State(state): State<Dashboard>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
    Path(trial): Path<String>,
    Form(form): Form<UnblindForm>,
) -> Response {
    if cross_site(&headers) {
        return refuse_cross_site();
    }
    let person = match &session.person {
        Some(p) => p.name.clone(),
        None => form.person.unwrap_or_default(),
    };
    let body = serde_json::json!({ "reason": form.reason, "person": person });
    match unblinding::unblind_for(
        &state.app,
        &session.principal,
        &trial,
        &form.record_id,
        &body,
    )
    .await
    {
        Ok(answer) => html(
            StatusCode::OK,
            &UnblindedSubject {
                trial_id: trial,
                answer,
            },
        ),
        Err(e) => not_done(&e, &trial),
    }
}
