//! A small most-recently-used list of single-flight slots, keyed by something that includes the
//! database version (the audit chain's head) it was computed at.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::OnceCell;

/// A value computed once, however many requests wait for it.
pub type Slot<T> = Arc<OnceCell<Arc<T>>>;

/// Slots for the most recently asked keys.
pub struct Recent<K, T> {
    capacity: usize,
    entries: VecDeque<(K, Slot<T>)>,
}

impl<K: PartialEq + Clone, T> Recent<K, T> {
    pub fn new(capacity: usize) -> Self {
        Recent {
            capacity,
            entries: VecDeque::new(),
        }
    }

    /// The slot for `key` (new and empty if absent), moved to the front; entries whose head
    /// is older than `head` are dropped, as no request will ask for them again.
    pub fn slot(&mut self, key: &K, head: i64, head_of: impl Fn(&K) -> i64) -> Slot<T> {
        self.entries.retain(|(k, _)| head_of(k) >= head);
        let slot = match self.entries.iter().position(|(k, _)| k == key) {
            Some(i) => self.entries.remove(i).map(|(_, s)| s).unwrap_or_default(),
            None => Arc::new(OnceCell::new()),
        };
        self.entries.push_front((key.clone(), slot.clone()));
        self.entries.truncate(self.capacity);
        slot
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_heads_evict_older_entries_and_capacity_is_kept() {
        let mut r: Recent<(u8, i64), u8> = Recent::new(2);
        let a = r.slot(&(1, 5), 5, |k| k.1);
        assert!(Arc::ptr_eq(&a, &r.slot(&(1, 5), 5, |k| k.1)));
        r.slot(&(2, 5), 5, |k| k.1);
        r.slot(&(3, 5), 5, |k| k.1);
        assert_eq!(r.len(), 2);
        r.slot(&(1, 6), 6, |k| k.1);
        assert_eq!(r.len(), 1, "head 5 entries are gone");
    }
}
