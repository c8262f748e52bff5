//! A circuit breaker per account: the specification's closed → open →
//! half-open machine, on tokio's clock.
//!
//! Closed: failures within the monitoring period are counted; a success resets
//! the count; at the threshold the circuit opens. Open: every request fails at
//! once, without being sent, until the reset timeout has passed. Half-open:
//! requests go through; the threshold of successes closes the circuit, one
//! failure opens it again.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    pub enabled: bool,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub reset_timeout: Duration,
    pub monitoring_period: Duration,
}

impl Default for BreakerConfig {
    /// The specification's: 10 failures, 3 successes, 60 s reset, 120 s window.
    fn default() -> Self {
        Self {
            enabled: true,
            failure_threshold: 10,
            success_threshold: 3,
            reset_timeout: Duration::from_secs(60),
            monitoring_period: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(&self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed { failures: VecDeque<Instant> },
    Open { until: Instant },
    HalfOpen { successes: u32 },
}

/// A state change, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: CircuitState,
    pub to: CircuitState,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    /// Changed at run time by an account's own configuration.
    config: Mutex<BreakerConfig>,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config: Mutex::new(config),
            inner: Mutex::new(Inner::Closed {
                failures: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn config(&self) -> BreakerConfig {
        self.config
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// How long the circuit stays open once it opens.
    pub fn reset_timeout(&self) -> Duration {
        self.config().reset_timeout
    }

    /// Applies new settings from now on (a count of failures so far is kept;
    /// a circuit disabled now is closed).
    pub fn reconfigure(&self, config: &BreakerConfig) {
        let mut current = self
            .config
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *current == *config {
            return;
        }
        *current = config.clone();
        if !config.enabled {
            *self.lock() = Inner::Closed {
                failures: VecDeque::new(),
            };
        }
    }

    pub fn state(&self) -> CircuitState {
        match *self.lock() {
            Inner::Closed { .. } => CircuitState::Closed,
            Inner::Open { .. } => CircuitState::Open,
            Inner::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// May a request go out now? `Err(remaining)` while open. An open circuit
    /// whose timeout has passed turns half-open here.
    pub fn admit(&self) -> (Result<(), Duration>, Option<Transition>) {
        if !self.config().enabled {
            return (Ok(()), None);
        }
        let mut inner = self.lock();
        if let Inner::Open { until } = *inner {
            let now = Instant::now();
            if now < until {
                return (Err(until - now), None);
            }
            *inner = Inner::HalfOpen { successes: 0 };
            return (
                Ok(()),
                Some(Transition {
                    from: CircuitState::Open,
                    to: CircuitState::HalfOpen,
                }),
            );
        }
        (Ok(()), None)
    }

    pub fn record_success(&self) -> Option<Transition> {
        let config = self.config();
        let mut inner = self.lock();
        match &mut *inner {
            Inner::Closed { failures } => {
                failures.clear();
                None
            }
            Inner::HalfOpen { successes } => {
                *successes += 1;
                if *successes >= config.success_threshold {
                    *inner = Inner::Closed {
                        failures: VecDeque::new(),
                    };
                    Some(Transition {
                        from: CircuitState::HalfOpen,
                        to: CircuitState::Closed,
                    })
                } else {
                    None
                }
            }
            Inner::Open { .. } => None,
        }
    }

    pub fn record_failure(&self) -> Option<Transition> {
        let config = self.config();
        if !config.enabled {
            return None;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        let from = match &mut *inner {
            Inner::Closed { failures } => {
                failures.push_back(now);
                while failures
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > config.monitoring_period)
                {
                    failures.pop_front();
                }
                if failures.len() < config.failure_threshold as usize {
                    return None;
                }
                CircuitState::Closed
            }
            Inner::HalfOpen { .. } => CircuitState::HalfOpen,
            Inner::Open { .. } => return None,
        };
        *inner = Inner::Open {
            until: now + config.reset_timeout,
        };
        Some(Transition {
            from,
            to: CircuitState::Open,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig::default())
    }

    #[tokio::test(start_paused = true)]
    async fn ten_failures_open_it_and_it_fails_fast() {
        let b = breaker();
        for _ in 0..9 {
            assert_eq!(b.record_failure(), None);
        }
        assert_eq!(b.record_failure().map(|t| t.to), Some(CircuitState::Open));
        assert_eq!(b.admit().0, Err(Duration::from_secs(60)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count_and_old_failures_expire() {
        let b = breaker();
        for _ in 0..9 {
            b.record_failure();
        }
        b.record_success();
        for _ in 0..9 {
            assert_eq!(b.record_failure(), None);
        }
        tokio::time::advance(Duration::from_secs(121)).await;
        assert_eq!(b.record_failure(), None, "the nine are out of the window");
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_after_the_timeout_then_three_successes_close_it() {
        let b = breaker();
        for _ in 0..10 {
            b.record_failure();
        }
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(b.admit().0.is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        let (admitted, transition) = b.admit();
        assert!(admitted.is_ok());
        assert_eq!(transition.map(|t| t.to), Some(CircuitState::HalfOpen));
        b.record_success();
        b.record_success();
        assert_eq!(b.record_success().map(|t| t.to), Some(CircuitState::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_while_half_open_opens_it_again() {
        let b = breaker();
        for _ in 0..10 {
            b.record_failure();
        }
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(b.admit().0.is_ok());
        assert_eq!(
            b.record_failure().map(|t| t.from),
            Some(CircuitState::HalfOpen)
        );
        assert!(b.admit().0.is_err());
    }

    #[test]
    fn a_disabled_breaker_never_opens() {
        let b = CircuitBreaker::new(BreakerConfig {
            enabled: false,
            ..BreakerConfig::default()
        });
        for _ in 0..100 {
            b.record_failure();
        }
        assert!(b.admit().0.is_ok());
    }
}
