//! Answers to CloudEvents kept in groups (see [`crate::service::intake`]).

use crate::store::{self, StoreError};

/// Keeps answers in groups: the answers arriving while one group is written go in the next,
/// in one transaction, as the enrolment queue commits enrolments (one write per answer would
/// serialise every CloudEvent behind its own commit).
#[derive(Clone)]
pub struct Keeper {
    jobs: tokio::sync::mpsc::UnboundedSender<KeepJob>,
}

type KeepJob = (
    store::inbound::ToKeep,
    tokio::sync::oneshot::Sender<Result<Option<store::inbound::Kept>, String>>,
);

/// Most answers in one group.
const KEEP_GROUP: usize = 512;

impl Keeper {
    /// Start the keeper's task (inside a tokio runtime).
    pub fn start(store: crate::store::Store) -> Keeper {
        let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel::<KeepJob>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut group = vec![first];
                while group.len() < KEEP_GROUP {
                    match queue.try_recv() {
                        Ok(job) => group.push(job),
                        Err(_) => break,
                    }
                }
                let (items, waiters): (Vec<_>, Vec<_>) = group.into_iter().unzip();
                match store::inbound::keep_many(&store, &items).await {
                    Ok(results) => {
                        for (w, r) in waiters.into_iter().zip(results) {
                            let _ = w.send(Ok(r));
                        }
                    }
                    Err(e) => {
                        let text = e.to_string();
                        for w in waiters {
                            let _ = w.send(Err(text.clone()));
                        }
                    }
                }
            }
        });
        Keeper { jobs }
    }

    /// Keep one answer: `None` when kept, or the answer kept before under its key.
    pub async fn keep(
        &self,
        item: store::inbound::ToKeep,
    ) -> Result<Option<store::inbound::Kept>, StoreError> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send((item, done))
            .map_err(|_| StoreError::Corrupt("the answer keeper stopped".into()))?;
        result
            .await
            .map_err(|_| StoreError::Corrupt("the answer keeper stopped".into()))?
            .map_err(StoreError::Corrupt)
    }
}
