//! One inbound CloudEvent (HTTP or the bus) taken through the paths the plain endpoints use:
//! an enrolment through the enrolment queue, a screening report, one follow-up event through
//! the event intake. Same validation, same scope, same idempotency (by record id and event id),
//! and on top of it idempotency by the CloudEvent's `(source, id)`: the answer given is kept,
//! so a replay gets the same answer, and the same key with other content is a conflict.
//!
//! An answer is the status and JSON body the HTTP endpoints would give (the bus sends the body
//! as its reply and the status in a header). Answers are kept only when final: a refusal or
//! success, never a fault of the engine (5xx) or a rate limit, after which the sender may try
//! again.

use serde_json::{json, Map, Value};

use super::error::{error_body, Code, CodedError};
use super::events::{self, Delivery, IngestError};
use super::screening::{self, ScreeningOutcome};
use super::{enrol, AppState, Principal};
use crate::inbound::{Envelope, ENROLMENT_REQUESTED, EVENT_RECORDED, SCREENING_REPORTED};
use crate::store::{self, StoreError};

/// What the sender is told: an HTTP status and the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn error(code: Code, message: &str, details: Map<String, Value>) -> Answer {
        Answer {
            status: code.http_status(),
            body: error_body(code, message, details),
        }
    }

    fn of(e: &dyn CodedError) -> Answer {
        let code = e.code();
        if code.is_fault() {
            tracing::error!(error = %e, code = code.as_str(), "cloudevent failed");
        }
        Answer::error(code, &e.public_message(), e.details())
    }

    /// Whether the sender should send it again later (a fault or a rate limit), rather than
    /// being told for good.
    pub fn is_transient(&self) -> bool {
        self.status >= 500 || self.status == 429
    }
}

/// Take one CloudEvent through its path for `principal`.
pub async fn receive(state: &AppState, principal: &Principal, envelope: &Envelope) -> Answer {
    match store::inbound::find(&state.store, &envelope.source, &envelope.id).await {
        Ok(Some(kept)) if kept.content_sha256 == envelope.content_sha256 => {
            return Answer {
                status: kept.status,
                body: kept.answer,
            }
        }
        Ok(Some(_)) => {
            return Answer::error(
                Code::CloudEventConflict,
                &format!(
                    "CloudEvent `{}` from `{}` was received before with other content; send \
                     another event under a new id",
                    envelope.id, envelope.source
                ),
                Map::new(),
            )
        }
        Ok(None) => {}
        Err(e) => return Answer::of(&e),
    }
    let answer = dispatch(state, principal, envelope).await;
    if !answer.is_transient() {
        let kept = store::inbound::Kept {
            ce_type: envelope.event_type.clone(),
            content_sha256: envelope.content_sha256.clone(),
            status: answer.status,
            answer: answer.body.clone(),
        };
        let at = state.clock.now().to_string();
        match store::inbound::keep(&state.store, &envelope.source, &envelope.id, &kept, &at).await {
            // Another delivery of the same event kept its answer first: that one stands.
            Ok(Some(first)) if first.content_sha256 == kept.content_sha256 => {
                return Answer {
                    status: first.status,
                    body: first.answer,
                }
            }
            Ok(_) => {}
            Err(e) => return Answer::of(&e),
        }
    }
    answer
}

/// The trial an enrolment or screening event is for: `trial_id` in its data (taken out of the
/// body the plain endpoint would get).
fn trial_and_body(data: &Map<String, Value>) -> Result<(String, Value), Answer> {
    match data.get("trial_id") {
        Some(Value::String(t)) if !t.is_empty() => {
            let mut body = data.clone();
            body.remove("trial_id");
            Ok((t.clone(), Value::Object(body)))
        }
        other => Err(Answer::error(
            Code::InvalidCloudEvent,
            &format!(
                "the event's data must name its trial in `trial_id` (a string), got {}",
                other.map_or_else(|| "nothing".to_string(), Value::to_string)
            ),
            super::error::detail(
                "attributes",
                json!([{"attribute": "data", "message": "`trial_id` is missing"}]),
            ),
        )),
    }
}

async fn dispatch(state: &AppState, principal: &Principal, envelope: &Envelope) -> Answer {
    match envelope.event_type.as_str() {
        ENROLMENT_REQUESTED => {
            let (trial, body) = match trial_and_body(&envelope.data) {
                Ok(v) => v,
                Err(a) => return a,
            };
            match enrol::enrol(&state.enrolments, &state.trials, principal, &trial, &body).await {
                Ok(enrol::EnrolOutcome::Created(a)) => Answer {
                    status: 201,
                    body: json!(a),
                },
                Ok(enrol::EnrolOutcome::Replayed(a)) => Answer {
                    status: 200,
                    body: json!(a),
                },
                Err(e) => Answer::of(&e),
            }
        }
        SCREENING_REPORTED => {
            let (trial, body) = match trial_and_body(&envelope.data) {
                Ok(v) => v,
                Err(a) => return a,
            };
            match screening::report_not_randomised(
                &state.store,
                &state.trials,
                principal,
                &trial,
                &body,
                state.clock.now(),
            )
            .await
            {
                Ok(ScreeningOutcome::Created(r)) => Answer {
                    status: 201,
                    body: json!(r),
                },
                Ok(ScreeningOutcome::Replayed(r)) => Answer {
                    status: 200,
                    body: json!(r),
                },
                Err(e) => Answer::of(&e),
            }
        }
        EVENT_RECORDED => {
            let scope = match events::authorise(principal) {
                Ok(s) => s,
                Err(e) => return Answer::of(&e),
            };
            let received_at = state.clock.now();
            let batch = json!({"events": [Value::Object(envelope.data.clone())]});
            let parsed = match events::parse_json_batch(&batch, received_at.date()) {
                Ok(p) => p,
                Err(rows) => return Answer::of(&IngestError::Invalid(rows)),
            };
            let delivery = Delivery {
                actor: &principal.actor,
                scope,
                received_at,
            };
            match events::ingest(&state.store, &parsed, &[0], &delivery, |_| {}).await {
                Ok(report) => Answer {
                    status: 200,
                    body: json!(report),
                },
                Err(e) => Answer::of(&e),
            }
        }
        other => Answer::error(
            Code::InvalidCloudEvent,
            &format!("type `{other}` is not one rrct receives"),
            Map::new(),
        ),
    }
}

impl From<StoreError> for Answer {
    fn from(e: StoreError) -> Answer {
        Answer::of(&e)
    }
}
