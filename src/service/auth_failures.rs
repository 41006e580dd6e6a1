//! Failed authentications, counted per client address: a client that keeps presenting unknown
//! tokens is refused for a while before its tokens are even looked up, so tokens cannot be
//! guessed at speed, and every failure is logged (the address, never the token).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per client address within [`WINDOW`].
pub const LIMIT: usize = 20;
/// The window failures are counted over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Recent failures by client address.
#[derive(Debug)]
pub struct FailedAuthentications {
    limit: usize,
    window: Duration,
    by_client: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Default for FailedAuthentications {
    fn default() -> Self {
        FailedAuthentications::new(LIMIT, WINDOW)
    }
}

impl FailedAuthentications {
    pub fn new(limit: usize, window: Duration) -> Self {
        FailedAuthentications {
            limit,
            window,
            by_client: Mutex::new(HashMap::new()),
        }
    }

    /// How long `client` must wait before it may try again, when it has failed too often.
    pub fn blocked(&self, client: Option<IpAddr>) -> Option<Duration> {
        let client = client?;
        let mut map = self.by_client.lock().ok()?;
        let now = Instant::now();
        let failures = map.get_mut(&client)?;
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            failures.pop_front();
        }
        if failures.len() >= self.limit {
            failures
                .front()
                .map(|first| self.window.saturating_sub(now.duration_since(*first)))
        } else {
            None
        }
    }

    /// Count and log one failure (`why`: what was wrong, never the token itself).
    pub fn record(&self, client: Option<IpAddr>, why: &str) {
        tracing::warn!(
            client = %client.map_or_else(|| "unknown".to_string(), |c| c.to_string()),
            reason = why,
            "authentication failed"
        );
        let (Some(client), Ok(mut map)) = (client, self.by_client.lock()) else {
            return;
        };
        if map.len() > 100_000 {
            let window = self.window;
            map.retain(|_, f| f.back().is_some_and(|t| t.elapsed() < window));
        }
        let failures = map.entry(client).or_default();
        failures.push_back(Instant::now());
        while failures.len() > self.limit {
            failures.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_refused_after_the_limit_and_others_are_not() {
        let f = FailedAuthentications::new(3, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..2 {
            f.record(Some(a), "unknown token");
            assert!(f.blocked(Some(a)).is_none());
        }
        f.record(Some(a), "unknown token");
        assert!(f.blocked(Some(a)).is_some());
        assert!(f.blocked(Some(b)).is_none());
        let short = FailedAuthentications::new(1, Duration::from_millis(1));
        short.record(Some(a), "x");
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.blocked(Some(a)).is_none(), "the window has passed");
    }
}
