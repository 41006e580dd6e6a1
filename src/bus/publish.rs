//! The outbox published to JetStream: each event, in outbox order, to
//! `{p}.out.<trial>.<type>` with its outbox id as `Nats-Msg-Id`, marked published once the
//! stream acknowledged it. At least once: an instance that stops between the acknowledgement and
//! the mark publishes the event again, under the same id (JetStream drops it within its
//! duplicate window; a consumer keyed by the CloudEvent id drops it in any case).

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
    // One at a time, each acknowledged before the next is sent: an event whose acknowledgement
    // fails is sent again before any later one, so the stream keeps the outbox's order.
    let mut done = Vec::with_capacity(events.len());
    for e in &events {
        let subject = format!(
            "{}.out.{}.{}",
            settings.prefix,
            e.trial_id.as_deref().unwrap_or("_"),
            e.event_type
        );
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", e.id.to_string().as_str());
        headers.insert("Content-Type", "application/cloudevents+json");
        let acked = match js
            .publish_with_headers(subject, headers, e.event.to_string().into())
            .await
        {
            Ok(ack) => ack.await.map(|_| ()).map_err(|err| err.to_string()),
            Err(err) => Err(err.to_string()),
        };
        if let Err(err) = acked {
            tracing::warn!(error = %err, id = e.id, "bus: an outbox event was not acknowledged");
            break;
        }
        done.push(e.id);
    }
    let at = state.clock.now().to_string();
    outbox::published(&state.store, &done, &at)
        .await
        .map_err(|e| e.to_string())?;
    Ok(done.len())
}
