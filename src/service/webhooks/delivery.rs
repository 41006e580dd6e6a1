//! The delivery worker: sends each webhook its trial's outbox records, one at a time in outbox
//! order, until each is acknowledged.
//!
//! Every `poll_interval` the worker asks the database which webhooks have records waiting and
//! are due, takes a lease on each (so that of all the servers sharing the database one worker
//! at a time delivers a webhook, and its order holds across them) and delivers each leased
//! webhook in its own task, so a slow or failing receiver holds up only its own webhook.
//!
//! A record is POSTed as its structured-mode CloudEvent (`application/cloudevents+json`),
//! blinded by the trial's masking, with the Standard Webhooks headers: `webhook-id` (the
//! webhook's id and the outbox id, the same on every attempt), `webhook-timestamp` and
//! `webhook-signature` (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, signed anew on each
//! attempt). A 2xx answer moves the webhook's cursor past the record; anything else, a
//! timeout or a connection error keeps the cursor where it is and schedules the same record
//! again after an exponential backoff (`retry_base` doubled per failed attempt, at most
//! `retry_cap`). Nothing is ever skipped and nothing given up: the receiver gets every record,
//! in order, at least once (a record whose acknowledgement was lost, or whose lease ran out,
//! is sent again under the same `webhook-id`). Redirects are not followed.
//!
//! The lease is renewed with every acknowledged record and must outlast one request: it is at
//! least twice `request_timeout`. Times are the servers' clocks, so servers sharing a database
//! need clocks that agree to well within the lease. On shutdown the worker lets each delivery
//! finish its request in flight and gives its leases back, so another server (or the next
//! start) carries on at once; a server that dies keeps its leases until they run out.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::secret::{self, SigningSecret};
use crate::outbound::{self, OutboundRecord};
use crate::protocol::Masking;
use crate::service::seed_vault::SeedKey;
use crate::service::trials::stored_protocols;
use crate::store::webhooks::{self as stored, DueWebhook};
use crate::store::{outbox, Store, StoreError};

/// How the worker paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// How often the database is asked for webhooks with records waiting.
    pub poll_interval: Duration,
    /// The wait after a record's first failed attempt; doubled after each further one.
    pub retry_base: Duration,
    /// The longest wait between two attempts.
    pub retry_cap: Duration,
    /// How long a receiver may take to answer.
    pub request_timeout: Duration,
    /// How long a worker holds a webhook without renewing (at least twice `request_timeout`).
    pub lease: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            poll_interval: Duration::from_secs(1),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(600),
            request_timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
        }
    }
}

impl DeliveryOptions {
    /// The wait before attempt `failed + 1` at a record that failed `failed` times (≥ 1).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rrct::service::webhooks::DeliveryOptions;
    /// let o = DeliveryOptions::default();
    /// assert_eq!(o.backoff(1), Duration::from_secs(1));
    /// assert_eq!(o.backoff(4), Duration::from_secs(8));
    /// assert_eq!(o.backoff(40), Duration::from_secs(600));
    /// ```
    pub fn backoff(&self, failed: i64) -> Duration {
        let doublings = failed.clamp(1, 32) as u32 - 1;
        self.retry_base
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.retry_cap)
    }

    fn lease(&self) -> Duration {
        self.lease.max(self.request_timeout * 2)
    }
}

/// Records read from the outbox at a time.
const BATCH: i64 = 100;
/// The longest `last_error` kept.
const ERROR_CHARS: usize = 300;

/// Start delivering every webhook of the database until `shutdown` resolves; the handle ends
/// once the deliveries in flight have finished and their leases are given back. Must be called
/// inside a tokio runtime.
pub fn spawn_delivery(
    store: Store,
    key: SeedKey,
    options: DeliveryOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(run(store, key, options, shutdown))
}

/// What one delivery task needs.
#[derive(Clone)]
struct Worker {
    store: Store,
    key: SeedKey,
    options: DeliveryOptions,
    client: reqwest::Client,
    /// This worker's name in leases: unique per start.
    owner: String,
    stopping: watch::Receiver<bool>,
}

async fn run(
    store: Store,
    key: SeedKey,
    options: DeliveryOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let client = match reqwest::Client::builder()
        .timeout(options.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("rrct/", env!("CARGO_PKG_VERSION"), " webhooks"))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery cannot start: no HTTP client");
            return;
        }
    };
    let mut random = [0u8; 8];
    if let Err(e) = getrandom::fill(&mut random) {
        tracing::error!(error = %e, "webhook delivery cannot start: no randomness");
        return;
    }
    let (stop, stopping) = watch::channel(false);
    let worker = Worker {
        store,
        key,
        options,
        client,
        owner: format!("{}-{}", std::process::id(), hex::encode(random)),
        stopping,
    };
    let mut running: HashSet<String> = HashSet::new();
    let mut tasks: JoinSet<String> = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while let Some(done) = tasks.try_join_next() {
            match done {
                Ok(id) => {
                    running.remove(&id);
                }
                Err(e) => tracing::error!(error = %e, "a webhook delivery task failed"),
            }
        }
        match stored::due(&worker.store, &crate::store::now_text()).await {
            Ok(due) => {
                for webhook in due {
                    if running.contains(&webhook.webhook.webhook_id) {
                        continue;
                    }
                    let id = webhook.webhook.webhook_id.clone();
                    match claim(&worker, &id).await {
                        Ok(Some((through, attempts))) => {
                            running.insert(id.clone());
                            let w = worker.clone();
                            tasks.spawn(async move {
                                let webhook = DueWebhook {
                                    delivered_through: through,
                                    attempts,
                                    ..webhook
                                };
                                deliver(&w, &webhook).await;
                                id
                            });
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(webhook = %id, error = %e, "webhook lease not taken")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "webhooks due not read"),
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(options.poll_interval) => {}
        }
    }
    let _ = stop.send(true);
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a webhook delivery task failed");
        }
    }
}

fn at(after: Duration) -> String {
    let then = chrono::Utc::now() + chrono::Duration::from_std(after).unwrap_or_default();
    then.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn claim(worker: &Worker, webhook_id: &str) -> Result<Option<(i64, i64)>, StoreError> {
    stored::claim(
        &worker.store,
        webhook_id,
        &worker.owner,
        &crate::store::now_text(),
        &at(worker.options.lease()),
    )
    .await
}

/// Deliver one leased webhook's waiting records until none is left, one fails, the lease is
/// lost or the worker stops; then let the lease go.
#[tracing::instrument(skip_all, fields(webhook = %due.webhook.webhook_id, trial = %due.webhook.trial_id))]
async fn deliver(worker: &Worker, due: &DueWebhook) {
    let w = &due.webhook;
    let outcome = async {
        let binding = secret::Binding {
            webhook_id: &w.webhook_id,
            trial_id: &w.trial_id,
            url: &w.url,
            event_types: w.event_types.as_deref(),
        };
        let secret = match secret::open(&worker.key, &binding, &w.sealed_secret) {
            Ok(s) => s,
            Err(e) => {
                // The record is not at fault; retry it later, as for a receiver that failed.
                let error = e.to_string();
                let (through, attempts) = (due.delivered_through, due.attempts + 1);
                fail(worker, due, through, through, attempts, &error, None).await?;
                return Ok(());
            }
        };
        let types: Option<Vec<String>> = w
            .event_types
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok());
        let masking = stored_protocols(&worker.store)
            .await?
            .iter()
            .find(|p| p.trial_id == w.trial_id)
            .map_or(Masking::Blinded, |p| p.masking);
        let mut cursor = due.delivered_through;
        let mut attempts = due.attempts;
        'batches: loop {
            let batch = outbox::after(&worker.store, cursor, Some(&w.trial_id), BATCH).await?;
            if batch.is_empty() {
                break;
            }
            // The newest record passed over by the type filter since the cursor.
            let mut passed = None;
            for record in &batch {
                if *worker.stopping.borrow() {
                    break 'batches;
                }
                if types
                    .as_ref()
                    .is_some_and(|t| !t.contains(&record.event_type))
                {
                    passed = Some(record.id);
                    continue;
                }
                match post(worker, w, &secret, record, masking).await {
                    Ok(()) => {
                        if !advance(worker, w, cursor, record.id, 1).await? {
                            return Ok(());
                        }
                        cursor = record.id;
                        attempts = 0;
                        passed = None;
                    }
                    Err(error) => {
                        attempts += 1;
                        let to = passed.unwrap_or(cursor);
                        fail(worker, due, cursor, to, attempts, &error, Some(record.id)).await?;
                        return Ok(());
                    }
                }
            }
            if let Some(to) = passed {
                if !advance(worker, w, cursor, to, 0).await? {
                    return Ok(());
                }
                cursor = to;
            }
        }
        stored::release(&worker.store, &w.webhook_id, &worker.owner).await
    }
    .await;
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "webhook delivery interrupted; the lease runs out and it is retried");
    }
}

async fn advance(
    worker: &Worker,
    w: &stored::SealedWebhook,
    from: i64,
    to: i64,
    delivered: i64,
) -> Result<bool, StoreError> {
    let moved = stored::advance(
        &worker.store,
        &w.webhook_id,
        &worker.owner,
        from,
        to,
        delivered,
        &crate::store::now_text(),
        &at(worker.options.lease()),
    )
    .await?;
    if !moved {
        tracing::info!("webhook lease lost or webhook removed; another delivery carries on");
    }
    Ok(moved)
}

async fn fail(
    worker: &Worker,
    due: &DueWebhook,
    from: i64,
    to: i64,
    attempts: i64,
    error: &str,
    outbox_id: Option<i64>,
) -> Result<(), StoreError> {
    let wait = worker.options.backoff(attempts);
    let error: String = error.chars().take(ERROR_CHARS).collect();
    tracing::warn!(
        outbox_id,
        attempts,
        retry_in_ms = wait.as_millis() as u64,
        error = %error,
        "webhook delivery failed; the same record is retried"
    );
    stored::failed(
        &worker.store,
        &due.webhook.webhook_id,
        &worker.owner,
        from,
        to,
        attempts,
        &crate::store::now_text(),
        &at(wait),
        &error,
    )
    .await
    .map(|_| ())
}

/// The `webhook-id` of a record sent to a webhook: the same on every attempt.
pub fn message_id(webhook_id: &str, outbox_id: i64) -> String {
    format!("{webhook_id}_{outbox_id}")
}

/// POST one record; `Err` with what went wrong (never the secret) unless a 2xx came back.
async fn post(
    worker: &Worker,
    w: &stored::SealedWebhook,
    secret: &SigningSecret,
    record: &OutboundRecord,
    masking: Masking,
) -> Result<(), String> {
    let body = outbound::cloud_event(record, masking).to_string();
    let id = message_id(&w.webhook_id, record.id);
    let timestamp = chrono::Utc::now().timestamp();
    let signature = standardwebhooks::Webhook::from_bytes(secret.as_bytes().to_vec())
        .and_then(|s| s.sign(&id, timestamp, body.as_bytes()))
        .map_err(|e| format!("cannot sign: {e}"))?;
    let answer = worker
        .client
        .post(&w.url)
        .header("content-type", "application/cloudevents+json")
        .header(standardwebhooks::HEADER_WEBHOOK_ID, &id)
        .header(
            standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
            timestamp.to_string(),
        )
        .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
        .body(body)
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("HTTP {}", r.status())),
        Err(e) if e.is_timeout() => Err(format!(
            "no answer within {} ms",
            worker.options.request_timeout.as_millis()
        )),
        Err(e) if e.is_connect() => Err(format!("cannot connect: {}", root_cause(&e))),
        Err(e) => Err(format!("request failed: {}", root_cause(&e))),
    }
}

/// The innermost cause of an error (reqwest's own message is generic).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
