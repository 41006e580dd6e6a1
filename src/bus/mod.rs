//! The event bus interface: NATS JetStream in, and the outbox out.
//!
//! `rrct serve --nats URL` creates (when absent) three streams — `{P}_IN` on `{p}.in.>`,
//! `{P}_OUT` on `{p}.out.>` and `{P}_DEAD` on `{p}.dead.>`, with `p` the subject prefix (`rrct`
//! by default, so `RRCT_IN`, `RRCT_OUT`, `RRCT_DEAD`) — and consumes `{P}_IN` through one durable
//! pull consumer that every instance shares, so several instances divide the messages.
//!
//! Messages are structured CloudEvents ([`crate::inbound`]). The subject says what the message
//! may do, as a token's scope does on HTTP:
//! - `{p}.in.enrol.<trial>` — `rrct.enrolment.requested` for that trial, as a register
//!   scoped to it;
//! - `{p}.in.screening.<trial>` — `rrct.screening.reported`, likewise;
//! - `{p}.in.events.<source>` — `rrct.event.recorded`, as a feed bound to that source.
//!
//! A message is acked only after its transaction commits (the service answered), so a message
//! redelivered after a crash is taken again and answered alike (idempotency by CloudEvent source
//! and id, and by record and event id). When the message names a reply subject — the
//! `Rrct-Reply-To` header, or the event's `replyto` extension — the answer is published there:
//! the body the HTTP endpoint would send, with its status in the `Rrct-Status` header and the
//! CloudEvent's id in `Ce-Id`. (A stream does not keep a message's NATS reply subject, which is
//! why the reply subject travels in the message.) A message that can never succeed (invalid,
//! out of scope, refused) is published to `{p}.dead.<original subject>` with the answer and
//! acked; one that failed for a transient reason (the database unavailable) is redelivered, and
//! dead-lettered after [`MAX_DELIVERIES`]. A reply is never published under rrct's own prefix
//! (`{p}.`) or the JetStream API: a sender cannot make rrct publish into the outbox or an intake.
//! Kept answers are keyed by the subject's scope as well as the event's source and id, and the
//! audit entries name the subject (`bus:{subject}`), not what the message says of itself.
//!
//! The outbox is published by [`publish`]: every outbox record, in order, to
//! `{p}.out.<trial>.<type>`, with its outbox id as `Nats-Msg-Id` (JetStream drops a duplicate
//! within its window; an instance that dies between publishing and marking publishes again
//! under the same id).

pub mod publish;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, AckKind};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::inbound::{self, ENROLMENT_REQUESTED, EVENT_RECORDED, SCREENING_REPORTED};
use crate::service::intake::{self, Answer};
use crate::service::{AppState, Principal, Role};

/// Deliveries after which a message the engine could not answer (a fault, every time) is
/// dead-lettered instead of taken again.
pub const MAX_DELIVERIES: i64 = 10;

/// Where the bus is and how it is used.
#[derive(Debug, Clone)]
pub struct BusSettings {
    /// `nats://host:port`.
    pub url: String,
    /// The subject prefix, one token (`rrct`); the streams are named after it in upper case.
    pub prefix: String,
    /// The durable consumer every instance shares.
    pub consumer: String,
    /// Messages taken at once (the enrolment queue commits them in groups).
    pub in_flight: usize,
    /// How long a message taken by an instance may stay unacknowledged before the server
    /// hands it to another (an instance killed mid-message).
    pub ack_wait: Duration,
    /// How often the outbox is looked at.
    pub publish_every: Duration,
}

impl BusSettings {
    /// The defaults for a bus at `url`.
    pub fn new(url: &str) -> BusSettings {
        BusSettings {
            url: url.to_string(),
            prefix: "rrct".into(),
            consumer: "rrct-intake".into(),
            in_flight: 256,
            ack_wait: Duration::from_secs(30),
            publish_every: Duration::from_millis(200),
        }
    }

    fn stream(&self, kind: &str) -> String {
        format!(
            "{}_{kind}",
            self.prefix.to_ascii_uppercase().replace('-', "_")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the subject prefix `{0}` must be one token of letters, digits, `_` and `-`")]
    Prefix(String),
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("JetStream at {url}: {reason}")]
    JetStream { url: String, reason: String },
}

/// The bus, running: the consumer and the outbox publisher.
pub struct Bus {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    clients: Vec<async_nats::Client>,
}

impl Bus {
    /// Stop taking messages, let the ones in hand finish, and stop publishing.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        // The last replies and acknowledgements leave before the connections go.
        for client in &self.clients {
            let _ = client.flush().await;
        }
    }
}

async fn connect(url: &str) -> Result<async_nats::Client, BusError> {
    async_nats::connect(url)
        .await
        .map_err(|e| BusError::Connect {
            url: url.to_string(),
            reason: e.to_string(),
        })
}

/// Connect, create the streams and the consumer when absent, and start consuming and
/// publishing.
pub async fn start(state: AppState, settings: BusSettings) -> Result<Bus, BusError> {
    let prefix_ok = !settings.prefix.is_empty()
        && settings
            .prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !prefix_ok {
        return Err(BusError::Prefix(settings.prefix.clone()));
    }
    let client = connect(&settings.url).await?;
    // The outbox goes out on a connection of its own: a round of hundreds of events (and their
    // acknowledgements) on the consumer's connection would hold up the replies and acks
    // queued behind it.
    let outbox_client = connect(&settings.url).await?;
    let js = jetstream::new(client.clone());
    let js_err = |e: &dyn std::fmt::Display| BusError::JetStream {
        url: settings.url.clone(),
        reason: e.to_string(),
    };
    for (kind, part) in [("IN", "in"), ("OUT", "out"), ("DEAD", "dead")] {
        js.get_or_create_stream(stream::Config {
            name: settings.stream(kind),
            subjects: vec![format!("{}.{part}.>", settings.prefix)],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| js_err(&e))?;
    }
    let inbox = js
        .get_stream(settings.stream("IN"))
        .await
        .map_err(|e| js_err(&e))?;
    let consumer: consumer::PullConsumer = inbox
        .get_or_create_consumer(
            &settings.consumer,
            consumer::pull::Config {
                durable_name: Some(settings.consumer.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: settings.ack_wait,
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| js_err(&e))?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(settings.in_flight.max(1))
        .messages()
        .await
        .map_err(|e| js_err(&e))?;
    let (stop, stopped) = watch::channel(false);
    let settings = Arc::new(settings);
    let consume = tokio::spawn(consume(
        state.clone(),
        client.clone(),
        js.clone(),
        settings.clone(),
        messages,
        stopped.clone(),
    ));
    let publish = tokio::spawn(publish::run(
        state,
        jetstream::new(outbox_client.clone()),
        settings,
        stopped,
    ));
    tracing::info!("consuming the bus");
    Ok(Bus {
        stop,
        tasks: vec![consume, publish],
        clients: vec![client, outbox_client],
    })
}

async fn consume(
    state: AppState,
    client: async_nats::Client,
    js: jetstream::Context,
    settings: Arc<BusSettings>,
    mut messages: consumer::pull::Stream,
    mut stopped: watch::Receiver<bool>,
) {
    let gate = Arc::new(Semaphore::new(settings.in_flight.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let next = tokio::select! {
            _ = stopped.changed() => break,
            next = messages.next() => next,
        };
        let message = match next {
            None => break,
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "bus: cannot take a message");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let (state, client, js, settings) =
            (state.clone(), client.clone(), js.clone(), settings.clone());
        tasks.spawn(async move {
            let _permit = permit;
            handle(&state, &client, &js, &settings, message).await;
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// What a subject lets a message do: its expected type and the principal it acts as.
fn scope_of(prefix: &str, subject: &str) -> Option<(&'static str, Principal)> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix(".in.")?;
    let (kind, target) = rest.split_once('.')?;
    if target.is_empty() || target.contains('.') {
        return None;
    }
    let actor = format!("bus:{subject}");
    let principal = |role, trial: Option<&str>, source: Option<&str>| Principal {
        role,
        trial_id: trial.map(str::to_string),
        site_code: None,
        source_id: source.map(str::to_string),
        actor: actor.clone(),
    };
    match kind {
        "enrol" => Some((
            ENROLMENT_REQUESTED,
            principal(Role::Register, Some(target), None),
        )),
        "screening" => Some((
            SCREENING_REPORTED,
            principal(Role::Register, Some(target), None),
        )),
        "events" => Some((EVENT_RECORDED, principal(Role::Source, None, Some(target)))),
        _ => None,
    }
}

fn refusal(message: &str) -> Answer {
    Answer::error(
        crate::service::error::Code::InvalidCloudEvent,
        message,
        serde_json::Map::new(),
    )
}

/// Take one message: answer it, reply, dead-letter it when it can never succeed, then ack (or
/// ask for it again later when the engine could not answer).
async fn handle(
    state: &AppState,
    client: &async_nats::Client,
    js: &jetstream::Context,
    settings: &BusSettings,
    message: jetstream::Message,
) {
    let subject = message.subject.to_string();
    let header_reply = message
        .headers
        .as_ref()
        .and_then(|h| h.get("Rrct-Reply-To"))
        .map(|v| v.as_str().to_string());
    let parsed: Result<Value, _> = serde_json::from_slice(&message.payload);
    let (answer, ce_id, reply_to) = match (scope_of(&settings.prefix, &subject), parsed) {
        (None, _) => (
            refusal(&format!(
                "subject `{subject}` is not one rrct consumes: {p}.in.enrol.<trial>, \
                 {p}.in.screening.<trial> or {p}.in.events.<source>",
                p = settings.prefix
            )),
            None,
            header_reply,
        ),
        (Some(_), Err(e)) => (
            Answer::error(
                crate::service::error::Code::MalformedJson,
                &format!("the message is not JSON: {e}"),
                serde_json::Map::new(),
            ),
            None,
            header_reply,
        ),
        (Some((expected, principal)), Ok(value)) => match inbound::structured(&value) {
            Err(errors) => (
                Answer::error(
                    crate::service::error::Code::InvalidCloudEvent,
                    "not a CloudEvent rrct receives",
                    crate::service::error::detail("attributes", errors),
                ),
                value.get("id").and_then(Value::as_str).map(str::to_string),
                header_reply,
            ),
            Ok(envelope) if envelope.event_type != expected => (
                refusal(&format!(
                    "a message on `{subject}` must be of type `{expected}`, not `{}`",
                    envelope.event_type
                )),
                Some(envelope.id.clone()),
                header_reply.or(envelope.reply_to.clone()),
            ),
            Ok(envelope) => {
                let answer =
                    intake::receive_keeping(state, &principal, &envelope, intake::Keeping::After)
                        .await;
                (
                    answer,
                    Some(envelope.id.clone()),
                    header_reply.or(envelope.reply_to.clone()),
                )
            }
        },
    };
    // A reply never goes to rrct's own subjects: a sender allowed to publish one kind of
    // message must not make rrct publish on its behalf into the outbox or another intake.
    let own = format!("{}.", settings.prefix);
    let reply_to = reply_to.filter(|r| !r.starts_with(&own) && !r.starts_with("$JS."));
    let info = message.info().ok();
    let deliveries = info.as_ref().map_or(1, |i| i.delivered);
    // Failing again and again (a fault that does not pass): told for good and dead-lettered.
    let given_up = answer.is_transient() && deliveries >= MAX_DELIVERIES;
    if answer.is_transient() && !given_up {
        // Not answered: taken again later, by this instance or another.
        let _ = message
            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
            .await;
        return;
    }
    if let Some(reply) = reply_to {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Rrct-Status", answer.status.to_string().as_str());
        headers.insert("Content-Type", "application/json");
        if let Some(id) = &ce_id {
            headers.insert("Ce-Id", id.as_str());
        }
        if let Err(e) = client
            .publish_with_headers(reply, headers, answer.body.to_string().into())
            .await
        {
            tracing::warn!(error = %e, "bus: cannot reply");
        }
    }
    let refused = answer.status >= 400;
    if refused {
        let dead = json!({
            "subject": subject,
            "status": answer.status,
            "answer": answer.body,
            "message": String::from_utf8_lossy(&message.payload),
        });
        let dead_subject = format!("{}.dead.{subject}", settings.prefix);
        // Keyed by the message's place in its stream: a redelivered message is dead-lettered
        // once (within the stream's duplicate window).
        let mut headers = async_nats::HeaderMap::new();
        if let Some(i) = &info {
            headers.insert(
                "Nats-Msg-Id",
                format!("dead-{}", i.stream_sequence).as_str(),
            );
        }
        let published = match js
            .publish_with_headers(dead_subject, headers, dead.to_string().into())
            .await
        {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = published {
            tracing::warn!(error = %e, "bus: cannot dead-letter a message; it will come again");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return;
        }
    }
    if let Err(e) = message.ack().await {
        tracing::warn!(error = %e, "bus: cannot ack a message; it will come again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_scope_their_messages() {
        let (t, p) = scope_of("rrct", "rrct.in.enrol.taste").unwrap();
        assert_eq!(t, ENROLMENT_REQUESTED);
        assert_eq!(
            (p.role, p.trial_id.as_deref()),
            (Role::Register, Some("taste"))
        );
        let (t, p) = scope_of("rrct", "rrct.in.events.swedeheart").unwrap();
        assert_eq!(t, EVENT_RECORDED);
        assert_eq!(
            (p.role, p.source_id.as_deref(), p.trial_id),
            (Role::Source, Some("swedeheart"), None)
        );
        for bad in [
            "rrct.in.enrol",
            "rrct.in.enrol.",
            "rrct.in.enrol.a.b",
            "rrct.in.other.taste",
            "other.in.enrol.taste",
            "rrct.out.enrol.taste",
        ] {
            assert!(scope_of("rrct", bad).is_none(), "{bad}");
        }
    }
}
