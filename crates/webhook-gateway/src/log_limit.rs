//! A cap on log lines per second, so that a flood of refused requests costs
//! the log pipeline a few lines, not one per request. Lines left out are
//! counted, and the next line says how many.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug)]
pub struct LogLimiter {
    per_second: u32,
    started: Instant,
    window: Mutex<(u64, u32)>,
    suppressed: AtomicU64,
}

impl LogLimiter {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            started: Instant::now(),
            window: Mutex::new((0, 0)),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written now (`n` lines were left out
    /// since the last one written); `None` when this one is left out.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(self.started.elapsed().as_secs())
    }

    fn allow_at(&self, second: u64) -> Option<u64> {
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if window.0 != second {
            *window = (second, 0);
        }
        if window.1 >= self.per_second {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        window.1 += 1;
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_a_few_lines_and_counts_the_rest() {
        let limiter = LogLimiter::new(3);
        let written: Vec<_> = (0..1000).filter_map(|_| limiter.allow_at(7)).collect();
        assert_eq!(written, vec![0, 0, 0]);
        assert_eq!(
            limiter.allow_at(8),
            Some(997),
            "the next second reports the rest"
        );
        assert_eq!(limiter.allow_at(8), Some(0));
    }
}
