//! One inbound CloudEvent (HTTP or the bus) taken through the paths the plain endpoints use:
//! an enrolment through the enrolment queue, a screening report, one follow-up event through
//! the event intake. Same validation, same scope, same idempotency (by record id and event id),
//! and on top of it idempotency by the CloudEvent's `(source, id)`: the answer given is kept,
//! so a replay gets the same answer, and the same key with other content is a conflict.
//!
//! An answer is the status and JSON body the HTTP endpoints would give (the bus sends the body
//! as its reply and the status in a header). Answers are kept only when they follow from the
//! event alone (see [`Answer::is_final`]): never a fault of the engine, a rate limit or a
//! refusal of the sender's scope, after which the same event may be sent again.

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

    /// Whether the answer follows from the event alone, and so is kept for its replays: a
    /// success, or a refusal of what the event says (invalid, not eligible, a conflict). A
    /// refusal of who sent it (401, 403), of where (404) or of when (a trial not recruiting, a
    /// fault) is not kept: the same event may succeed when sent again.
    fn is_final(&self) -> bool {
        if (200..300).contains(&self.status) {
            return true;
        }
        let code = self.body["error"]["code"].as_str().unwrap_or("");
        [
            Code::MalformedJson,
            Code::InvalidCloudEvent,
            Code::InvalidEnrolment,
            Code::InvalidRequest,
            Code::InvalidEvents,
            Code::NotEligible,
            Code::AlreadyRandomised,
            Code::RecordConflict,
            Code::EventConflict,
        ]
        .iter()
        .any(|c| c.as_str() == code)
    }
}

/// Take one CloudEvent through its path for `principal`.
/// When the answer is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keeping {
    /// Before answering (HTTP: a replay sent right after the answer finds it).
    Before,
    /// After answering (the bus: the answer is not held up by the keeping's commit; the change
    /// itself is committed before the answer either way, so a replay meanwhile is answered by
    /// the record's or event's own idempotency, with the same allocation).
    After,
}

/// Take one CloudEvent through its path for `principal`.
pub async fn receive(state: &AppState, principal: &Principal, envelope: &Envelope) -> Answer {
    receive_keeping(state, principal, envelope, Keeping::Before).await
}

/// [`receive`], keeping the answer before or after answering.
pub async fn receive_keeping(
    state: &AppState,
    principal: &Principal,
    envelope: &Envelope,
    keeping: Keeping,
) -> Answer {
    let scope = scope_key(principal);
    match store::inbound::find(&state.store, &scope, &envelope.source, &envelope.id).await {
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
    if answer.is_final() {
        let kept = store::inbound::Kept {
            ce_type: envelope.event_type.clone(),
            content_sha256: envelope.content_sha256.clone(),
            status: answer.status,
            answer: answer.body.clone(),
        };
        let at = state.clock.now().to_string();
        let hash = kept.content_sha256.clone();
        let item = (
            scope,
            envelope.source.clone(),
            envelope.id.clone(),
            kept,
            at,
        );
        if keeping == Keeping::After {
            let keeper = state.kept.clone();
            tokio::spawn(async move {
                if let Err(e) = keeper.keep(item).await {
                    tracing::warn!(error = %e, "a CloudEvent's answer was not kept");
                }
            });
            return answer;
        }
        match state.kept.keep(item).await {
            // Another delivery of the same event kept its answer first: that one stands.
            Ok(Some(first)) if first.content_sha256 == hash => {
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

/// The sender's scope as the kept answers are keyed by it: role, trial, site and source. A
/// replay is answered from what was kept only for a sender of the same scope (another sender's
/// event goes its own way, to its own refusal), and one sender's key never blocks another's.
fn scope_key(p: &Principal) -> String {
    format!(
        "{}|{}|{}|{}",
        p.role.as_str(),
        p.trial_id.as_deref().unwrap_or("*"),
        p.site_code.as_deref().unwrap_or("*"),
        p.source_id.as_deref().unwrap_or("*")
    )
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
