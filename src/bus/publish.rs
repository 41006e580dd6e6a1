//! The outbox published to JetStream: each event, in outbox order, to
//! `{p}.out.<trial>.<type>` with its outbox id as `Nats-Msg-Id`, marked published once the
//! stream acknowledged it.
//!
//! A round's events are sent one after another without waiting for each acknowledgement (one
//! connection keeps their order), then the acknowledgements are taken in order. Each event after
//! a round's first names its predecessor in `Nats-Expected-Last-Msg-Id`, so the stream stores it
//! only right after that predecessor: were one event lost on the way (a reconnect mid-round),
//! every later one of the round is refused rather than stored ahead of it, and the next round
//! starts again from the lost one. JetStream checks duplicates first, so another instance
//! publishing the same round meets duplicates, never a refusal.
//!
//! At least once: an instance that stops between the acknowledgement and the mark publishes the
//! event again, under the same id (JetStream drops it within its duplicate window; a consumer
//! keyed by the CloudEvent id drops it in any case).

use std::sync::Arc;

use async_nats::jetstream;
use tokio::sync::watch;

use super::BusSettings;
use crate::service::{outbox, AppState};

/// Events published per round.
const ROUND: i64 = 500;

pub async fn run(
    state: AppState,
    js: jetstream::Context,
    settings: Arc<BusSettings>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let more = match round(&state, &js, &settings).await {
            Ok(n) => n == ROUND as usize,
            Err(e) => {
                tracing::warn!(error = %e, "bus: outbox not published; trying again");
                false
            }
        };
        if *stopped.borrow() {
            break;
        }
        if !more {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tokio::time::sleep(settings.publish_every) => {}
            }
        }
    }
}

/// Publish one round of waiting events; how many were published.
async fn round(
    state: &AppState,
    js: &jetstream::Context,
    settings: &BusSettings,
) -> Result<usize, String> {
    let events = outbox::unpublished(&state.store, &state.trials, ROUND)
        .await
        .map_err(|e| e.to_string())?;
    if events.is_empty() {
        return Ok(0);
    }
    let done = send_in_order(js, &settings.prefix, &events).await;
    let at = state.clock.now().to_string();
    outbox::published(&state.store, &done, &at)
        .await
        .map_err(|e| e.to_string())?;
    Ok(done.len())
}

/// The `Nats-Expected-Last-Msg-Id` of each event of a round: its predecessor's outbox id, none
/// for the first (every earlier event is acknowledged before a round starts).
pub(crate) fn expected_predecessors(ids: &[i64]) -> Vec<Option<i64>> {
    std::iter::once(None)
        .chain(ids.iter().copied().map(Some))
        .take(ids.len())
        .collect()
}

/// Send `events` to `{prefix}.out.<trial>.<type>` in order; the outbox ids acknowledged, the
/// prefix of `events` before the first that was not sent or not acknowledged.
pub async fn send_in_order(
    js: &jetstream::Context,
    prefix: &str,
    events: &[outbox::Outgoing],
) -> Vec<i64> {
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    let mut pending = Vec::with_capacity(events.len());
    for (e, expected) in events.iter().zip(expected_predecessors(&ids)) {
        let subject = format!(
            "{prefix}.out.{}.{}",
            e.trial_id.as_deref().unwrap_or("_"),
            e.event_type
        );
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", e.id.to_string().as_str());
        if let Some(before) = expected {
            headers.insert("Nats-Expected-Last-Msg-Id", before.to_string().as_str());
        }
        headers.insert("Content-Type", "application/cloudevents+json");
        match js
            .publish_with_headers(subject, headers, e.event.to_string().into())
            .await
        {
            Ok(ack) => pending.push((e.id, ack)),
            Err(err) => {
                tracing::warn!(error = %err, id = e.id, "bus: an outbox event was not sent");
                break;
            }
        }
    }
    let mut done = Vec::with_capacity(pending.len());
    for (id, ack) in pending {
        if let Err(err) = ack.await {
            tracing::warn!(error = %err, id, "bus: an outbox event was not acknowledged");
            break;
        }
        done.push(id);
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_but_a_rounds_first_names_its_predecessor() {
        assert_eq!(expected_predecessors(&[7, 9, 12]), [None, Some(7), Some(9)]);
        assert_eq!(expected_predecessors(&[3]), [None]);
        assert!(expected_predecessors(&[]).is_empty());
    }
}
