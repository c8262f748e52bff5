//! The specification's retry delays: exponential backoff with full jitter,
//! `random(0, min(cap, base × 2^(attempt-1)))`.
//!
//! (The `backoff` crate is unmaintained; `backon`, its successor, adds jitter on
//! top of the delay instead of drawing it from `[0, delay]`, and the connector's
//! delays depend on the error anyway: see ADR 0008.)

use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// The specification's: 5 attempts, base 1 s, cap 32 s.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(32),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        full_jitter(self.base, self.cap, attempt)
    }
}

/// A delay drawn uniformly from `[0, min(cap, base × 2^(attempt-1))]`.
pub fn full_jitter(base: Duration, cap: Duration, attempt: u32) -> Duration {
    ceiling(base, cap, attempt).mul_f64(fastrand::f64())
}

/// `min(cap, base × 2^(attempt-1))`.
pub fn ceiling(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    base.saturating_mul(1u32 << exponent).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(32));
        let ceilings: Vec<u64> = (1..=8).map(|a| ceiling(base, cap, a).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 32, 32]);
        assert_eq!(ceiling(base, cap, 0).as_secs(), 1);
        assert_eq!(ceiling(base, cap, u32::MAX), cap);
    }

    #[test]
    fn delays_are_spread_under_the_ceiling() {
        let policy = RetryPolicy::default();
        let delays: Vec<Duration> = (0..2000).map(|_| policy.delay(4)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(8)));
        // Full jitter: both halves of [0, 8 s] are used.
        assert!(delays.iter().any(|d| *d < Duration::from_secs(2)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(6)));
    }
}
