//! `POST /api/v1/cloudevents`: CloudEvents 1.0 over HTTP in the three content modes —
//! structured (`application/cloudevents+json`), batched (`application/cloudevents-batch+json`)
//! and binary (`ce-*` headers, the data as the body). Each event goes the way the plain
//! endpoint's request would ([`crate::service::intake`]); the answer is the plain endpoint's
//! status and body. A batch answers `200` with each event's answer in order:
//! `{"results": [{"id", "source", "status", "body"}]}`.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::Authenticated;
use super::error::ApiError;
use crate::inbound::{self, AttributeError, BATCH, STRUCTURED};
use crate::service::error::{detail, Code};
use crate::service::intake::{self, Answer};
use crate::service::AppState;

/// A batch may carry up to [`inbound::MAX_BATCH`] events.
pub const CLOUDEVENTS_BODY_LIMIT_BYTES: usize = 4 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/cloudevents",
        post(receive).layer(DefaultBodyLimit::max(CLOUDEVENTS_BODY_LIMIT_BYTES)),
    )
}

fn invalid(errors: Vec<AttributeError>) -> Answer {
    let message = errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Answer::error(
        Code::InvalidCloudEvent,
        &format!("not a CloudEvent rrct receives: {message}"),
        detail("attributes", errors),
    )
}

fn respond(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(answer.body)).into_response()
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            Code::MalformedJson,
            format!(
                "the body is not JSON (line {}, column {}): {e}",
                e.line(),
                e.column()
            ),
        )
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/cloudevents",
    tag = "events",
    operation_id = "receive_cloudevents",
    summary = "Receive CloudEvents 1.0 (structured, batched or binary mode)",
    description = "An enrolment, a screening report or a follow-up event as a CloudEvent; answered with the status and body of the plain endpoint, or for a batch 200 with each event's answer.",
    request_body(content = crate::api::schema::AnyObject, description = "A CloudEvent (`application/cloudevents+json`), a batch (`application/cloudevents-batch+json`) or binary mode (`ce-*` headers)", content_type = "application/cloudevents+json"),
    responses(
        (status = 200, description = "Accepted, or a batch's answers", body = crate::api::schema::AnyObject),
        (status = 201, description = "An enrolment or screening created", body = crate::api::schema::AnyObject),
        (status = 400, description = "Not JSON, or not a CloudEvent rrct receives (`invalid_cloudevent`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial", body = crate::api::schema::ErrorBody),
        (status = 409, description = "A conflict of the plain endpoint, or the event's source and id received with other content", body = crate::api::schema::ErrorBody),
        (status = 413, description = "The body is too large", body = crate::api::schema::ErrorBody),
        (status = 415, description = "Neither CloudEvents content type nor binary mode", body = crate::api::schema::ErrorBody),
        (status = 422, description = "The event's data is invalid", body = crate::api::schema::ErrorBody),
    )
)]
async fn receive(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if content_type == STRUCTURED {
        let value = json_body(&body)?;
        let answer = match inbound::structured(&value) {
            Ok(envelope) => intake::receive(&state, &principal, &envelope).await,
            Err(errors) => invalid(errors),
        };
        return Ok(respond(answer));
    }
    if content_type == BATCH {
        let value = json_body(&body)?;
        let events = inbound::batch(&value).map_err(|e| {
            ApiError::new(Code::InvalidCloudEvent, e.message.clone()).with("attributes", json!([e]))
        })?;
        let mut results = Vec::with_capacity(events.len());
        for (item, parsed) in value.as_array().into_iter().flatten().zip(events) {
            let answer = match parsed {
                Ok(envelope) => intake::receive(&state, &principal, &envelope).await,
                Err(errors) => invalid(errors),
            };
            results.push(json!({
                "id": item.get("id"),
                "source": item.get("source"),
                "status": answer.status,
                "body": answer.body,
            }));
        }
        return Ok(Json(json!({ "results": results })).into_response());
    }
    if headers.contains_key("ce-specversion") {
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
            .collect();
        let answer = match inbound::binary(pairs, &body) {
            Ok(envelope) => intake::receive(&state, &principal, &envelope).await,
            Err(errors) => invalid(errors),
        };
        return Ok(respond(answer));
    }
    Err(ApiError::new(
        Code::UnsupportedMediaType,
        format!(
            "send a CloudEvent as {STRUCTURED}, a batch as {BATCH}, or in binary mode with \
             ce-* headers (ce-specversion, ce-id, ce-source, ce-type); got content type `{}`",
            content_type
        ),
    ))
}
