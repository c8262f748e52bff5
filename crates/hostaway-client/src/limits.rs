//! Rate limits: `governor`'s GCRA, on tokio's clock.
//!
//! Hostaway counts requests per 10 s window (20 per account, 15 per IP). A GCRA
//! with burst `b` and one token every `window / (limit - b + 1)` never lets more
//! than `limit` requests into any window, whatever the burst; a 2 % margin keeps
//! clock rounding on the safe side.

use std::num::NonZeroU32;
use std::ops::Add;
use std::time::Duration;

use domain::AccountId;
use governor::clock::{Clock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::RateLimit;

/// A point on tokio's clock, so a paused test clock drives the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = TokioInstant;
    fn add(self, nanos: Nanos) -> TokioInstant {
        TokioInstant(self.0 + Duration::from(nanos))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        Nanos::from(self.0.saturating_duration_since(earlier.0))
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        TokioInstant(
            self.0
                .checked_sub(Duration::from(duration))
                .unwrap_or(self.0),
        )
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;
    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

type Direct = RateLimiter<NotKeyed, InMemoryState, TokioClock, StateInformationMiddleware>;
type Keyed = RateLimiter<
    AccountId,
    DefaultKeyedStateStore<AccountId>,
    TokioClock,
    StateInformationMiddleware,
>;

pub fn quota(limit: &RateLimit) -> Quota {
    let limit_n = limit.limit.max(1);
    let burst = limit.burst.clamp(1, limit_n);
    let per_token = limit.window.mul_f64(1.02) / (limit_n - burst + 1);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(per_token.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// The two limits every request passes: its account's and this egress IP's.
#[derive(Debug)]
pub struct Limits {
    pub(crate) ip: Direct,
    pub(crate) accounts: Keyed,
}

impl Limits {
    pub fn new(account: &RateLimit, ip: &RateLimit) -> Self {
        Self {
            ip: RateLimiter::direct_with_clock(quota(ip), TokioClock)
                .with_middleware::<StateInformationMiddleware>(),
            accounts: RateLimiter::dashmap_with_clock(quota(account), TokioClock)
                .with_middleware::<StateInformationMiddleware>(),
        }
    }

    /// Waits until both the account and the IP may send one more request, and
    /// takes that permission. Returns what is left of each burst.
    #[cfg(test)]
    pub async fn acquire(&self, account: &AccountId) -> (u32, u32) {
        let account_left = loop {
            match self.accounts.check_key(account) {
                Ok(snapshot) => break snapshot.remaining_burst_capacity(),
                Err(not_until) => {
                    tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await
                }
            }
        };
        let ip_left = loop {
            match self.ip.check() {
                Ok(snapshot) => break snapshot.remaining_burst_capacity(),
                Err(not_until) => {
                    tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await
                }
            }
        };
        (account_left, ip_left)
    }

    /// Drops the state of accounts idle long enough to be back at full burst.
    #[cfg(test)]
    pub fn forget_idle(&self) {
        self.accounts.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// Requests sent as fast as the limiter allows, for a minute of paused time:
    /// no 10 s window ever holds more than the limit.
    async fn max_in_any_window(limit: RateLimit) -> (usize, usize) {
        let limits = Limits::new(
            &limit,
            &RateLimit {
                limit: 10_000,
                window: Duration::from_secs(1),
                burst: 10_000,
            },
        );
        let account = AccountId::parse("1").unwrap();
        let start = tokio::time::Instant::now();
        let mut sent: VecDeque<tokio::time::Instant> = VecDeque::new();
        let (mut worst, mut total) = (0, 0);
        while start.elapsed() < Duration::from_secs(60) {
            limits.acquire(&account).await;
            let now = tokio::time::Instant::now();
            sent.push_back(now);
            while sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= limit.window)
            {
                sent.pop_front();
            }
            worst = worst.max(sent.len());
            total += 1;
        }
        (worst, total)
    }

    #[tokio::test(start_paused = true)]
    async fn no_window_ever_exceeds_the_limit_whatever_the_burst() {
        for burst in [1, 5, 20] {
            let limit = RateLimit {
                burst,
                ..RateLimit::HOSTAWAY_ACCOUNT
            };
            let (worst, total) = max_in_any_window(limit).await;
            assert!(worst <= 20, "burst {burst}: {worst} requests in one window");
            assert!(
                total >= 20,
                "burst {burst}: only {total} requests in a minute"
            );
        }
        // The default (burst 1) keeps close to the full budget: ~2 per second.
        let (_, total) = max_in_any_window(RateLimit::HOSTAWAY_ACCOUNT).await;
        assert!(total >= 110, "{total} requests in a minute at 20 per 10 s");
    }
}
