//! Hostaway's limits, counted over a sliding window.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Default)]
pub struct SlidingWindows {
    windows: HashMap<String, VecDeque<Instant>>,
}

impl SlidingWindows {
    /// Counts a request for `key` if fewer than `limit` were counted in the
    /// last `window`; says whether it was within the limit.
    pub fn admit(&mut self, key: &str, limit: usize, window: Duration, now: Instant) -> bool {
        let times = self.windows.entry(key.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            times.pop_front();
        }
        if times.len() >= limit {
            return false;
        }
        times.push_back(now);
        true
    }
}

/// The most requests in any `window` among `times` (sorted).
pub fn max_in_window(times: &[Instant], window: Duration) -> usize {
    let mut start = 0;
    let mut best = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}
