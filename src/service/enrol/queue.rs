//! The write path of enrolments: one task per process takes everything queued, decides it in one
//! transaction ([`super::decide`]) and answers each request after the commit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Notify};

use super::decide::{decide_batch, Pending};
use super::{EnrolError, EnrolOutcome};
use crate::service::metrics::SharedMetrics;
use crate::service::Clock;
use crate::store::{Store, StoreError};

/// Largest number of enrolments decided and committed together.
pub const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<EnrolOutcome, EnrolError>>;

/// A batch after one of at least this many enrolments (the queue is under load) waits for its
/// siblings: see [`next_batch`].
const LINGER_FROM: usize = 8;

/// The longest a batch waits for its siblings (tokio's timer rounds it up to its next tick).
const LINGER_MAX: std::time::Duration = std::time::Duration::from_millis(1);

/// How many requests the batch after one of `last` waits for, when `queued` were queued behind
/// it as it was answered: as many as were then in flight under load, none otherwise.
fn siblings(last: usize, queued: usize) -> usize {
    if last >= LINGER_FROM {
        (last + queued).min(MAX_BATCH)
    } else {
        0
    }
}

/// The next batch: the first request to come, everything queued behind it (up to
/// [`MAX_BATCH`]), and, under load, the requests that come within a moment after it until it
/// holds `wanted` (see [`siblings`]); `None` once every sender is gone.
///
/// Requesters answered together (a register's busy clients, a load tool's connections) come
/// back spread over about a millisecond. Without waiting, the first of them starts a batch of
/// its own and the rest queue behind it: batches settle into two groups taking turns, and each
/// request waits for the other group's batch before its own. A batch costs mostly its fixed
/// round trips, so one batch of all of them is much cheaper than two halves. So after a batch
/// of at least [`LINGER_FROM`], the next waits until it holds as many requests as were in
/// flight when that batch was answered (its own and those queued behind it), or until
/// [`LINGER_MAX`] has passed. Nothing waits when the queue is not under load.
async fn next_batch<T>(receiver: &mut mpsc::Receiver<T>, wanted: usize) -> Option<Vec<T>> {
    let first = receiver.recv().await?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    if batch.len() < wanted {
        let deadline = tokio::time::Instant::now() + LINGER_MAX;
        while batch.len() < wanted {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(next)) => batch.push(next),
                Ok(None) | Err(_) => break,
            }
        }
    }
    Some(batch)
}

/// The write path of enrolments: a task that decides queued enrolments in batches, each batch
/// one transaction and one commit (group commit).
///
/// Under load a batch's fixed cost (its round trips to the database and its commit), not the
/// decision, is what costs; deciding the enrolments that arrived while the previous batch was
/// running together (and, under load, those coming back a moment later: [`next_batch`]) and
/// acknowledging them after one commit keeps latency flat and lets throughput exceed one
/// commit per enrolment. Nothing is acknowledged before its commit, and a batch that fails is
/// retried one enrolment per transaction, so one bad enrolment cannot fail its neighbours.
#[derive(Clone)]
pub struct EnrolmentQueue {
    sender: mpsc::Sender<(Pending, Reply)>,
    /// Where enrolment latencies, outcomes and batch sizes are counted.
    pub(super) metrics: SharedMetrics,
    undecided: Arc<Undecided>,
}

/// The enrolments submitted and not yet decided: those being handed to the queue and those in
/// it, also when their requester has gone (a client that closed its connection, a request
/// cancelled), as the deciding loop decides them all the same.
#[derive(Default)]
struct Undecided {
    count: AtomicUsize,
    none: Notify,
}

impl Undecided {
    fn decided(&self, n: usize) {
        if self.count.fetch_sub(n, Ordering::AcqRel) == n {
            self.none.notify_waiters();
        }
    }
}

/// One enrolment being handed to the queue: counted from before it is sent, and no longer if
/// it never gets there (the submitting future dropped on the way, or the queue gone).
struct Handing<'a> {
    undecided: &'a Undecided,
    queued: bool,
}

impl<'a> Handing<'a> {
    fn start(undecided: &'a Undecided) -> Self {
        undecided.count.fetch_add(1, Ordering::AcqRel);
        Handing {
            undecided,
            queued: false,
        }
    }
}

impl Drop for Handing<'_> {
    fn drop(&mut self) {
        // Once queued, the deciding loop counts it decided.
        if !self.queued {
            self.undecided.decided(1);
        }
    }
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
        let undecided = Arc::new(Undecided::default());
        let deciding_done = undecided.clone();
        let deciding = async move {
            // Under load, how many requests the next batch waits for.
            let mut waits_for = 0;
            while let Some(batch) = next_batch(&mut receiver, waits_for).await {
                let size = batch.len();
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
                deciding_done.decided(size);
                waits_for = siblings(size, receiver.len());
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
        EnrolmentQueue {
            sender,
            metrics,
            undecided,
        }
    }

    pub(super) async fn submit(&self, pending: Pending) -> Result<EnrolOutcome, EnrolError> {
        let (reply, answer) = oneshot::channel();
        let mut handing = Handing::start(&self.undecided);
        self.sender
            .send((pending, reply))
            .await
            .map_err(|_| EnrolError::Unavailable)?;
        handing.queued = true;
        drop(handing);
        answer.await.map_err(|_| EnrolError::Unavailable)?
    }

    /// How many enrolments are submitted and not yet decided.
    pub fn undecided(&self) -> usize {
        self.undecided.count.load(Ordering::Acquire)
    }

    /// Wait until every enrolment submitted so far is decided (committed or refused), those
    /// whose requester has gone included: at shutdown, once nothing submits any more, before
    /// the store closes.
    pub async fn until_decided(&self) {
        loop {
            let none = self.undecided.none.notified();
            tokio::pin!(none);
            // Registered before the count is read: a notification in between is not missed.
            none.as_mut().enable();
            if self.undecided() == 0 {
                return;
            }
            none.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_loaded_queue_waits_for_siblings() {
        assert_eq!(siblings(1, 0), 0);
        assert_eq!(siblings(LINGER_FROM - 1, 20), 0);
        assert_eq!(siblings(LINGER_FROM, 0), LINGER_FROM);
        assert_eq!(siblings(16, 16), 32);
        assert_eq!(siblings(32, 0), 32);
        assert_eq!(siblings(MAX_BATCH, 10), MAX_BATCH);
    }

    /// A queue holding `0..n`.
    async fn queued(n: usize) -> (mpsc::Sender<usize>, mpsc::Receiver<usize>) {
        let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
        for i in 0..n {
            sender.send(i).await.expect("room in the queue");
        }
        (sender, receiver)
    }

    /// Sends `from..to`, yielding after each, so each arrives after the batch began.
    fn arriving(
        sender: mpsc::Sender<usize>,
        from: usize,
        to: usize,
    ) -> tokio::task::JoinHandle<mpsc::Sender<usize>> {
        tokio::spawn(async move {
            for i in from..to {
                tokio::task::yield_now().await;
                sender.send(i).await.expect("the receiver is there");
            }
            sender
        })
    }

    #[tokio::test]
    async fn a_loaded_batch_takes_the_requesters_coming_back() {
        let (sender, mut receiver) = queued(3).await;
        let later = arriving(sender, 3, 40);
        let batch = next_batch(&mut receiver, 32).await.unwrap();
        assert_eq!(batch, (0..32).collect::<Vec<_>>());
        let _sender = later.await.unwrap();
        // The rest wait for the next batch, which has nothing to wait for.
        let rest = next_batch(&mut receiver, 0).await.unwrap();
        assert_eq!(rest, (32..40).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn without_load_a_batch_takes_only_what_is_queued() {
        let (sender, mut receiver) = queued(3).await;
        let later = arriving(sender, 3, 10);
        assert_eq!(next_batch(&mut receiver, 0).await.unwrap(), vec![0, 1, 2]);
        // Too few in the batch before to wait for anyone.
        let after_three = siblings(3, receiver.len());
        assert_eq!(after_three, 0);
        let _sender = later.await.unwrap();
        assert_eq!(
            next_batch(&mut receiver, after_three).await.unwrap(),
            (3..10).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn a_batch_waits_no_longer_than_its_limit() {
        let (sender, mut receiver) = queued(5).await;
        // 32 were expected back, 5 came, and the sender stays: the batch goes after the limit.
        let started = tokio::time::Instant::now();
        let batch = next_batch(&mut receiver, 32).await.unwrap();
        assert_eq!(batch, (0..5).collect::<Vec<_>>());
        assert!(started.elapsed() >= LINGER_MAX);
        drop(sender);
        assert!(next_batch(&mut receiver, 32).await.is_none());
    }

    #[tokio::test]
    async fn a_batch_is_never_larger_than_the_largest() {
        let (_sender, mut receiver) = queued(MAX_BATCH + 5).await;
        let batch = next_batch(&mut receiver, siblings(MAX_BATCH, MAX_BATCH))
            .await
            .unwrap();
        assert_eq!(batch.len(), MAX_BATCH);
        assert_eq!(receiver.len(), 5);
    }
}
