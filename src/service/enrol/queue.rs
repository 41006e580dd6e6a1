//! The write path of enrolments: one task per process takes everything queued, decides it in one
//! transaction ([`super::decide`]) and answers each request after the commit.

use tokio::sync::{mpsc, oneshot};

use super::decide::{decide_batch, Pending};
use super::{EnrolError, EnrolOutcome};
use crate::service::metrics::SharedMetrics;
use crate::service::Clock;
use crate::store::{Store, StoreError};

/// Largest number of enrolments decided and committed together.
pub const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<EnrolOutcome, EnrolError>>;

/// The write path of enrolments: a task that decides queued enrolments in batches, each batch
/// one transaction and one commit (group commit).
///
/// Under load a commit's fsync, not the decision, is what costs; deciding the enrolments that
/// arrived while the previous commit was running together and acknowledging them after one
/// commit keeps latency flat and lets throughput exceed one commit per enrolment. Nothing is
/// acknowledged before its commit, and a batch that fails is retried one enrolment per
/// transaction, so one bad enrolment cannot fail its neighbours.
#[derive(Clone)]
pub struct EnrolmentQueue {
    sender: mpsc::Sender<(Pending, Reply)>,
    /// Where enrolment latencies, outcomes and batch sizes are counted.
    pub(super) metrics: SharedMetrics,
}

impl EnrolmentQueue {
    /// Start the deciding task on the current tokio runtime; it ends when every handle is dropped.
    pub fn start(store: Store, clock: Clock) -> Self {
        Self::start_counted(store, clock, SharedMetrics::default())
    }

    /// As [`EnrolmentQueue::start`], counting into `metrics`.
    pub fn start_counted(store: Store, clock: Clock, metrics: SharedMetrics) -> Self {
        let (sender, mut receiver) = mpsc::channel::<(Pending, Reply)>(4 * MAX_BATCH);
        let counted = metrics.clone();
        let deciding = async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match receiver.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (items, replies): (Vec<Pending>, Vec<Reply>) = batch.into_iter().unzip();
                counted.batch(items.len());
                let started = std::time::Instant::now();
                let decided = decide_batch(&store, &items, clock.now()).await;
                tracing::debug!(
                    size = items.len(),
                    micros = started.elapsed().as_micros() as u64,
                    "enrolment batch decided"
                );
                match decided {
                    Ok(outcomes) => {
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            let _ = reply.send(outcome);
                        }
                    }
                    Err(e) if items.len() == 1 => {
                        if let Some(reply) = replies.into_iter().next() {
                            let _ = reply.send(Err(EnrolError::from(e)));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, size = items.len(), "batch failed; deciding one by one");
                        for (item, reply) in items.into_iter().zip(replies) {
                            let outcome = match decide_batch(
                                &store,
                                std::slice::from_ref(&item),
                                clock.now(),
                            )
                            .await
                            {
                                Ok(mut o) => o.pop().unwrap_or_else(|| {
                                    Err(StoreError::Corrupt("no outcome".into()).into())
                                }),
                                Err(e) => Err(e.into()),
                            };
                            let _ = reply.send(outcome);
                        }
                    }
                }
            }
        };
        // The deciding loop on a thread and runtime of its own: each of its statements' answers
        // wakes it at once, not after whatever request handling the shared runtime's workers
        // are busy with (under load that wait, once per statement, was most of a batch's time).
        let spawned = std::thread::Builder::new()
            .name("rrct-enrol".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(deciding),
                    Err(e) => tracing::error!(error = %e, "the enrolment queue cannot start"),
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "the enrolment queue cannot start");
        }
        EnrolmentQueue { sender, metrics }
    }

    pub(super) async fn submit(&self, pending: Pending) -> Result<EnrolOutcome, EnrolError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((pending, reply))
            .await
            .map_err(|_| EnrolError::Unavailable)?;
        answer.await.map_err(|_| EnrolError::Unavailable)?
    }
}
