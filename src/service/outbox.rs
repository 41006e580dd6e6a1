//! The outbox as CloudEvents: each record made into the event others are told, blinded as its
//! trial's masking says (see [`crate::outbound`]). The bus publisher and the webhooks read it
//! here, never the store.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::outbound::{self, OutboundRecord};
use crate::protocol::{Masking, Protocol};
use crate::store::{outbox, Store, StoreError};

/// One event to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The outbox id (the audit sequence number): the event's id, increasing in commit order.
    pub id: i64,
    pub trial_id: Option<String>,
    pub event_type: String,
    /// The structured-mode CloudEvent.
    pub event: Value,
}

async fn masking(store: &Store) -> Result<HashMap<String, Masking>, StoreError> {
    let protocols: Vec<Arc<Protocol>> = super::trials::stored_protocols(store).await?;
    Ok(protocols
        .iter()
        .map(|p| (p.trial_id.clone(), p.masking))
        .collect())
}

/// The masking of the records' trials from the trials this process serves (their current
/// protocols, in memory), reading the stored protocols only for a trial served elsewhere.
async fn masking_of(
    store: &Store,
    served: &super::TrialRegistry,
    records: &[OutboundRecord],
) -> Result<HashMap<String, Masking>, StoreError> {
    let mut known = HashMap::new();
    for t in records.iter().filter_map(|r| r.trial_id.as_deref()) {
        if known.contains_key(t) {
            continue;
        }
        match served.get(t) {
            Some(runtime) => {
                known.insert(t.to_string(), runtime.protocol.masking);
            }
            None => return masking(store).await,
        }
    }
    Ok(known)
}

fn outgoing(records: Vec<OutboundRecord>, masking: &HashMap<String, Masking>) -> Vec<Outgoing> {
    records
        .into_iter()
        .map(|r| {
            // A trial not known (cannot happen: the record's trial is registered) reveals
            // nothing: blinded.
            let m = r
                .trial_id
                .as_deref()
                .and_then(|t| masking.get(t).copied())
                .unwrap_or(Masking::Blinded);
            Outgoing {
                id: r.id,
                trial_id: r.trial_id.clone(),
                event_type: r.event_type.clone(),
                event: outbound::cloud_event(&r, m),
            }
        })
        .collect()
}

/// Events not yet published to the bus, oldest first, blinded by the masking of the trials
/// `served` (the stored protocols' for any other).
pub async fn unpublished(
    store: &Store,
    served: &super::TrialRegistry,
    limit: i64,
) -> Result<Vec<Outgoing>, StoreError> {
    let records = outbox::unpublished(store, limit).await?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let masking = masking_of(store, served, &records).await?;
    Ok(outgoing(records, &masking))
}

/// Events after outbox id `after`, of one trial when given, oldest first.
pub async fn after(
    store: &Store,
    after: i64,
    trial_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Outgoing>, StoreError> {
    let records = outbox::after(store, after, trial_id, limit).await?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    Ok(outgoing(records, &masking(store).await?))
}

/// Mark events published (the bus acknowledged them).
pub async fn published(store: &Store, ids: &[i64], at: &str) -> Result<(), StoreError> {
    outbox::mark_published(store, ids, at).await
}

/// How many events wait to be published.
pub async fn backlog(store: &Store) -> Result<i64, StoreError> {
    outbox::backlog(store).await
}
