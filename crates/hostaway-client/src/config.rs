//! Client configuration, with the specification's environment variables.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;
use retry::RetryPolicy;

use crate::breaker::BreakerConfig;

/// At most `limit` requests in any `window`, allowing bursts of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub window: Duration,
    pub burst: u32,
}

impl RateLimit {
    /// Hostaway's: 20 requests per 10 s per account.
    pub const HOSTAWAY_ACCOUNT: RateLimit = RateLimit {
        limit: 20,
        window: Duration::from_secs(10),
        burst: 1,
    };
    /// Hostaway's: 15 requests per 10 s per client IP.
    pub const HOSTAWAY_IP: RateLimit = RateLimit {
        limit: 15,
        window: Duration::from_secs(10),
        burst: 1,
    };

    /// From the specification's per-minute figure: Hostaway counts per 10 s, so
    /// `rpm` becomes `rpm / 6` per 10 s.
    pub fn per_minute(rpm: u32, burst: u32) -> Self {
        let limit = (rpm / 6).max(1);
        Self {
            limit,
            window: Duration::from_secs(10),
            burst: burst.clamp(1, limit),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://api.hostaway.com/v1`, or a simulator.
    pub base_url: String,
    /// Per request; `None` for no limit (tests on a paused clock).
    pub timeout: Option<Duration>,
    pub account_limit: RateLimit,
    pub ip_limit: RateLimit,
    pub retry: RetryPolicy,
    pub breaker: BreakerConfig,
    /// A new token is not used before this long after issue (Hostaway's 1 s).
    pub token_activation_delay: Duration,
    /// Source address of requests: the egress IP this client's limits are for.
    pub local_address: Option<IpAddr>,
    /// Who shares the egress budget: replicas behind one egress IP share one
    /// id (the default: all of them), a replica with its own IP has its own.
    pub egress_id: String,
    /// A request whose account budget is spent for longer than this is not
    /// waited for: it fails `throttled` (nothing sent), so that a worker can
    /// serve another account meanwhile.
    pub max_account_wait: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.hostaway.com/v1".into(),
            timeout: Some(Duration::from_secs(30)),
            account_limit: RateLimit::HOSTAWAY_ACCOUNT,
            ip_limit: RateLimit::HOSTAWAY_IP,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            token_activation_delay: Duration::from_secs(1),
            local_address: None,
            egress_id: "default".into(),
            max_account_wait: Duration::from_secs(3600),
        }
    }
}

/// The specification's variables, plus the per-IP limit it does not name.
#[derive(Debug, Clone, Args)]
pub struct HostawayApiArgs {
    /// Hostaway API base URL (point it at `hostaway-sim` to test).
    #[arg(
        id = "hostaway-api-url",
        long = "hostaway-api-url",
        env = "HOSTAWAY_API_URL",
        default_value = "https://api.hostaway.com/v1"
    )]
    pub api_url: String,
    #[arg(
        id = "hostaway-api-timeout-ms",
        long = "hostaway-api-timeout-ms",
        env = "HOSTAWAY_API_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub timeout_ms: u64,
    /// Requests per minute per account (Hostaway: 20 per 10 s = 120).
    #[arg(
        id = "hostaway-rate-limit-rpm",
        long = "hostaway-rate-limit-rpm",
        env = "HOSTAWAY_RATE_LIMIT_RPM",
        default_value_t = 120
    )]
    pub rate_limit_rpm: u32,
    /// Requests an account may send at once. Any burst is taken out of the
    /// window's budget: a larger burst lowers the sustained rate.
    #[arg(
        id = "hostaway-rate-limit-burst",
        long = "hostaway-rate-limit-burst",
        env = "HOSTAWAY_RATE_LIMIT_BURST",
        default_value_t = 1
    )]
    pub rate_limit_burst: u32,
    /// Requests per minute from this process's egress IP (Hostaway: 15 per 10 s = 90).
    #[arg(
        id = "hostaway-ip-rate-limit-rpm",
        long = "hostaway-ip-rate-limit-rpm",
        env = "HOSTAWAY_IP_RATE_LIMIT_RPM",
        default_value_t = 90
    )]
    pub ip_rate_limit_rpm: u32,
    #[arg(
        id = "hostaway-ip-rate-limit-burst",
        long = "hostaway-ip-rate-limit-burst",
        env = "HOSTAWAY_IP_RATE_LIMIT_BURST",
        default_value_t = 1
    )]
    pub ip_rate_limit_burst: u32,
    /// Attempts per request, the first included.
    #[arg(
        id = "hostaway-max-retries",
        long = "hostaway-max-retries",
        env = "HOSTAWAY_MAX_RETRIES",
        default_value_t = 5
    )]
    pub max_retries: u32,
    /// Base of the exponential backoff (full jitter; capped at 32 s).
    #[arg(
        id = "hostaway-retry-delay-ms",
        long = "hostaway-retry-delay-ms",
        env = "HOSTAWAY_RETRY_DELAY_MS",
        default_value_t = 1000
    )]
    pub retry_delay_ms: u64,
    /// The egress identity of this replica: replicas that reach Hostaway from
    /// one IP must share it (they share that IP's 15 requests per 10 s); give
    /// each replica with an IP of its own its own id.
    #[arg(
        id = "hostaway-egress-id",
        long = "hostaway-egress-id",
        env = "HOSTAWAY_EGRESS_ID",
        default_value = "default"
    )]
    pub egress_id: String,
    /// The local address requests are sent from (one of this host's IPs):
    /// how a replica gets an egress IP of its own.
    #[arg(
        id = "hostaway-local-address",
        long = "hostaway-local-address",
        env = "HOSTAWAY_LOCAL_ADDRESS"
    )]
    pub local_address: Option<IpAddr>,
    #[arg(
        id = "hostaway-circuit-breaker-enabled",
        long = "hostaway-circuit-breaker-enabled",
        env = "HOSTAWAY_CIRCUIT_BREAKER_ENABLED",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub breaker_enabled: bool,
    /// Failures (5xx, network) within two minutes that open an account's circuit.
    #[arg(
        id = "hostaway-circuit-breaker-threshold",
        long = "hostaway-circuit-breaker-threshold",
        env = "HOSTAWAY_CIRCUIT_BREAKER_THRESHOLD",
        default_value_t = 10
    )]
    pub breaker_threshold: u32,
    /// How long an open circuit stays open before a trial.
    #[arg(
        id = "hostaway-circuit-breaker-reset-ms",
        long = "hostaway-circuit-breaker-reset-ms",
        env = "HOSTAWAY_CIRCUIT_BREAKER_RESET_MS",
        default_value_t = 60_000
    )]
    pub breaker_reset_ms: u64,
}

impl HostawayApiArgs {
    pub fn config(&self) -> ClientConfig {
        ClientConfig {
            base_url: self.api_url.trim_end_matches('/').to_owned(),
            timeout: Some(Duration::from_millis(self.timeout_ms.max(1))),
            account_limit: RateLimit::per_minute(self.rate_limit_rpm, self.rate_limit_burst),
            ip_limit: RateLimit::per_minute(self.ip_rate_limit_rpm, self.ip_rate_limit_burst),
            retry: RetryPolicy {
                max_attempts: self.max_retries.max(1),
                base: Duration::from_millis(self.retry_delay_ms),
                cap: Duration::from_secs(32),
            },
            breaker: BreakerConfig {
                enabled: self.breaker_enabled,
                failure_threshold: self.breaker_threshold.max(1),
                reset_timeout: Duration::from_millis(self.breaker_reset_ms),
                ..BreakerConfig::default()
            },
            local_address: self.local_address,
            egress_id: self.egress_id.trim().to_owned(),
            ..ClientConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specification_figures_map_onto_hostaway_windows() {
        assert_eq!(RateLimit::per_minute(120, 1), RateLimit::HOSTAWAY_ACCOUNT);
        assert_eq!(RateLimit::per_minute(90, 1), RateLimit::HOSTAWAY_IP);
        // The specification's own defaults (100 rpm, burst 120) stay inside 16 per 10 s.
        assert_eq!(
            RateLimit::per_minute(100, 120),
            RateLimit {
                limit: 16,
                window: Duration::from_secs(10),
                burst: 16
            }
        );
        assert_eq!(RateLimit::per_minute(0, 0).limit, 1);
    }
}
