//! Rendered pages kept in memory, so a page is not rebuilt for every reader and every reload.
//!
//! A page is kept per trial, cut-off, role and site (its header names them) and per audit chain
//! head: the trial view reports the head its view is as new as, every committed write moves the
//! head, and a page is never served for a head other than the one it was built at. The data
//! under the pages, and their preparation, are the trial view's
//! ([`crate::service::trial_view`]); this module only remembers what was rendered from them.

use std::sync::{Arc, Mutex};

use crate::endpoints::DataCutoff;
use crate::service::trial_view::recent::Recent;

/// Rendered pages kept (a few hundred KiB each).
const PAGES: usize = 64;

/// Which page for whom: the view and everything its header shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageKey {
    pub trial: String,
    pub cutoff: DataCutoff,
    pub role: String,
    pub site: Option<String>,
    /// The audit chain head the page's data are as new as.
    pub head: i64,
}

/// The pages a server has rendered recently.
pub struct PageCache {
    pages: Mutex<Recent<PageKey, String>>,
}

impl Default for PageCache {
    fn default() -> Self {
        PageCache {
            pages: Mutex::new(Recent::new(PAGES)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("the page cache lock was poisoned")]
    Poisoned,
    #[error("rendering failed: {0}")]
    Render(String),
}

impl PageCache {
    /// The page for `key` from memory, or rendered by `build` (on a blocking thread: building
    /// is CPU work over the whole trial) and remembered. Concurrent requests for the same
    /// missing page wait for one rendering.
    pub async fn page<E>(
        &self,
        key: PageKey,
        build: impl FnOnce() -> Result<String, E> + Send + 'static,
    ) -> Result<Arc<String>, PageError>
    where
        E: std::fmt::Display,
    {
        let head = key.head;
        let slot = self
            .pages
            .lock()
            .map_err(|_| PageError::Poisoned)?
            .slot(&key, head, |k| k.head);
        slot.get_or_try_init(|| async {
            let body = tokio::task::spawn_blocking(move || {
                build().map_err(|e| PageError::Render(e.to_string()))
            })
            .await
            .map_err(|e| PageError::Render(e.to_string()))??;
            Ok(Arc::new(body))
        })
        .await
        .cloned()
    }
}
