//! Exponential backoff with full jitter (the specification's algorithm).

use std::time::Duration;

/// A delay drawn uniformly from `[0, min(cap, base × 2^(attempt-1))]`.
pub fn full_jitter(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let ceiling = base.saturating_mul(1u32 << exponent).min(cap);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_under_the_exponential_ceiling_and_the_cap() {
        let base = Duration::from_millis(1000);
        let cap = Duration::from_millis(32_000);
        for attempt in 1..40 {
            let ceiling = (base * 2u32.pow(attempt.min(6) - 1)).min(cap);
            for _ in 0..50 {
                assert!(full_jitter(base, cap, attempt) <= ceiling);
            }
        }
    }
}
