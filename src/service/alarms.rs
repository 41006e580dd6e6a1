//! The stale-source alarm: a register that has not delivered for longer than its protocol
//! expects is told to others once per silence, as `rrct.source.stale` through the outbox (the
//! audit entry `source_stale`), beside the flag the pages and `rrct analyse` show. A later
//! delivery ends the silence; the next silence raises the alarm again.

use std::time::Duration;

use chrono::NaiveDate;
use serde_json::json;

use super::Clock;
use crate::store::{alarms, Store, StoreError};

/// How often `rrct serve` looks.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Raise the alarm for every declared source of every registered trial that is stale as of
/// `today`; how many alarms were raised.
pub async fn raise_stale_sources(store: &Store, today: NaiveDate) -> Result<usize, StoreError> {
    let protocols = super::trials::stored_protocols(store).await?;
    if protocols.iter().all(|p| p.follow_up.sources.is_empty()) {
        return Ok(0);
    }
    let last = alarms::last_deliveries(store).await?;
    let day = |text: &str| crate::endpoints::parse_event_date(text.get(..10).unwrap_or(text));
    let mut raised = 0;
    for p in protocols.iter().filter(|p| !p.follow_up.sources.is_empty()) {
        let Some(first) = alarms::first_randomised(store, &p.trial_id).await? else {
            continue;
        };
        let Some(first) = day(&first) else { continue };
        for s in &p.follow_up.sources {
            let expected = i64::from(s.expected_every_days);
            let delivered = last
                .iter()
                .find(|(id, _)| *id == s.id)
                .and_then(|(_, at)| day(at));
            let (silent_since, reason) = match delivered {
                Some(d) if (today - d).num_days() > expected => (
                    d,
                    format!(
                        "last delivery {} days ago; expected every {expected} days",
                        (today - d).num_days()
                    ),
                ),
                None if (today - first).num_days() > expected => (
                    first,
                    format!(
                        "no delivery since the first randomisation ({first}); expected every \
                         {expected} days"
                    ),
                ),
                _ => continue,
            };
            let payload = json!({
                "source": s.id,
                "label": s.label,
                "last_delivery": delivered.map(|d| d.to_string()),
                "days_since_last_delivery": (today - silent_since).num_days(),
                "expected_every_days": s.expected_every_days,
                "reason": reason,
            });
            if alarms::raise_once(store, &p.trial_id, &payload).await? {
                tracing::warn!(trial = %p.trial_id, source = %s.id, %reason, "source stale");
                raised += 1;
            }
        }
    }
    Ok(raised)
}

/// Look every `every` until `stop` resolves.
pub async fn watch(
    store: Store,
    clock: Clock,
    every: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        if let Err(e) = raise_stale_sources(&store, clock.today()).await {
            tracing::warn!(error = %e, "stale sources not checked");
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
