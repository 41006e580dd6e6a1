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

pub use super::answer::Answer;
use super::error::Code;
use super::events::{self, Delivery, IngestError};
use super::screening::{self, ScreeningOutcome};
use super::{enrol, AppState, Principal};
use crate::inbound::{Envelope, ENROLMENT_REQUESTED, EVENT_RECORDED, SCREENING_REPORTED};
use crate::store::{self, StoreError};

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

/// [`receive`], keeping the answer before or after answering (an enrolment's answer is kept
/// in its batch's transaction either way; see [`enrol::enrol_event`]).
pub async fn receive_keeping(
    state: &AppState,
    principal: &Principal,
    envelope: &Envelope,
    keeping: Keeping,
) -> Answer {
    let scope = scope_key(principal);
    if envelope.event_type == ENROLMENT_REQUESTED {
        let refused = match trial_and_body(&envelope.data) {
            Err(answer) => answer,
            Ok((trial, body)) => {
                let key = enrol::CloudEventKey {
                    scope: scope.clone(),
                    source: envelope.source.clone(),
                    id: envelope.id.clone(),
                    ce_type: envelope.event_type.clone(),
                    content_sha256: envelope.content_sha256.clone(),
                };
                match enrol::enrol_event(
                    &state.enrolments,
                    &state.trials,
                    principal,
                    &trial,
                    &body,
                    key,
                )
                .await
                {
                    enrol::Decided::Queued(answer) => return answer,
                    enrol::Decided::Refused(e) => Answer::of(&e),
                }
            }
        };
        // Refused before the queue: an answer kept earlier under the key still stands.
        return match kept_answer(state, &scope, envelope).await {
            Some(earlier) => earlier,
            None => keep(state, scope, envelope, refused, keeping).await,
        };
    }
    if let Some(earlier) = kept_answer(state, &scope, envelope).await {
        return earlier;
    }
    let answer = dispatch(state, principal, envelope).await;
    keep(state, scope, envelope, answer, keeping).await
}

/// The answer kept under the event's key, a conflict when it was kept for other content, or
/// a fault; `None` when nothing is kept.
async fn kept_answer(state: &AppState, scope: &str, envelope: &Envelope) -> Option<Answer> {
    match store::inbound::find(&state.store, scope, &envelope.source, &envelope.id).await {
        Ok(Some(kept)) if kept.content_sha256 == envelope.content_sha256 => Some(Answer {
            status: kept.status,
            body: kept.answer,
        }),
        Ok(Some(_)) => Some(Answer::of(&enrol::EnrolError::CloudEventConflict {
            ce_source: envelope.source.clone(),
            id: envelope.id.clone(),
        })),
        Ok(None) => None,
        Err(e) => Some(Answer::of(&e)),
    }
}

/// Keep `answer` under the event's key when it is final, before or after answering.
async fn keep(
    state: &AppState,
    scope: String,
    envelope: &Envelope,
    answer: Answer,
    keeping: Keeping,
) -> Answer {
    if !answer.is_final() {
        return answer;
    }
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
        Ok(Some(first)) if first.content_sha256 == hash => Answer {
            status: first.status,
            body: first.answer,
        },
        Ok(_) => answer,
        Err(e) => Answer::of(&e),
    }
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
                Ok(report) => {
                    state
                        .metrics
                        .events(parsed.iter().map(|e| e.source.as_deref()));
                    Answer {
                        status: 200,
                        body: json!(report),
                    }
                }
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
