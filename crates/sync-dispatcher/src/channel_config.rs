//! One account's own settings: the specification's `HostawayChannelConfig`
//! (credentials apart: they live encrypted on the account).
//!
//! Stored as JSON in `channel_configs`, every version kept; the highest
//! version is in force. Jobs read it when they run, so a change applies to
//! the next job of every replica, without a restart; the shared request
//! budget reads `rateLimit.maxRequestsPerMinute` itself, in SQL
//! (`store::api_shared::take_budget`). An account without a stored
//! configuration runs on [`ChannelConfig::default`].

use std::collections::BTreeSet;

use std::time::Duration;

use domain::{AccountId, SyncKind};
use futures::future::BoxFuture;
use hostaway_client::{AccountSettings, AccountSettingsSource, BreakerSettings};
use serde::{Deserialize, Serialize};
use store::PgPool;

use crate::reconcile::Schedule;

/// The specification's sync type names, and the connector's own
/// (`reservations`: polling Hostaway for reservations webhooks missed).
pub const SYNC_TYPES: [(&str, SyncKind); 4] = [
    ("availability", SyncKind::Availability),
    ("pricing", SyncKind::Pricing),
    ("listing_details", SyncKind::Listing),
    ("reservations", SyncKind::Reservations),
];

pub fn sync_type_name(kind: SyncKind) -> &'static str {
    SYNC_TYPES
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(name, _)| *name)
        .unwrap_or("unknown")
}

pub fn sync_type(name: &str) -> Option<SyncKind> {
    SYNC_TYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, kind)| *kind)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelConfig {
    pub api: ApiSettings,
    pub rate_limit: RateLimitSettings,
    pub sync: SyncSettings,
    pub webhook: WebhookSettings,
    pub circuit_breaker: CircuitBreakerSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiSettings {
    pub timeout_ms: u32,
    pub max_retries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitSettings {
    pub max_requests_per_minute: u32,
    pub burst_capacity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncSettings {
    /// Names from [`SYNC_TYPES`].
    pub enabled_types: BTreeSet<String>,
    pub schedules: SyncSchedules,
}

/// Cron patterns; `off` stops that reconciliation for the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncSchedules {
    pub availability: String,
    pub pricing: String,
    pub listings: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookSettings {
    pub enabled: bool,
    pub retry_max_attempts: u32,
    pub retry_backoff_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakerSettings {
    pub enabled: bool,
    pub failure_threshold: u32,
    pub reset_timeout_ms: u32,
}

impl Default for ChannelConfig {
    /// The specification's defaults.
    fn default() -> Self {
        Self {
            api: ApiSettings {
                timeout_ms: 30_000,
                max_retries: 3,
            },
            rate_limit: RateLimitSettings {
                max_requests_per_minute: 100,
                burst_capacity: 120,
            },
            sync: SyncSettings {
                enabled_types: SYNC_TYPES.iter().map(|(n, _)| (*n).to_owned()).collect(),
                schedules: SyncSchedules {
                    availability: "*/15 * * * *".into(),
                    pricing: "0 * * * *".into(),
                    listings: "0 0 * * *".into(),
                },
            },
            webhook: WebhookSettings {
                enabled: true,
                retry_max_attempts: 5,
                retry_backoff_ms: 1_000,
            },
            circuit_breaker: CircuitBreakerSettings {
                enabled: true,
                failure_threshold: 10,
                reset_timeout_ms: 60_000,
            },
        }
    }
}

/// A setting out of its range, named by its path in the specification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ConfigError {
    pub field: &'static str,
    pub problem: String,
}

fn within(field: &'static str, value: u32, min: u32, max: u32) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError {
            field,
            problem: format!("{value} is outside {min}..={max}"),
        })
    }
}

impl ChannelConfig {
    /// Every problem, not only the first: an operator fixes them in one go.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut problems: Vec<ConfigError> = [
            within("api.timeout", self.api.timeout_ms, 1_000, 120_000),
            within("api.maxRetries", self.api.max_retries, 0, 10),
            // Hostaway allows 20 requests per 10 s per account: a higher
            // setting could only be refused by Hostaway. The budget counts
            // per 10 s, so 6 a minute (one per window) is the least it keeps.
            within(
                "rateLimit.maxRequestsPerMinute",
                self.rate_limit.max_requests_per_minute,
                6,
                120,
            ),
            within(
                "rateLimit.burstCapacity",
                self.rate_limit.burst_capacity,
                1,
                120,
            ),
            within(
                "webhook.retryPolicy.maxAttempts",
                self.webhook.retry_max_attempts,
                1,
                20,
            ),
            within(
                "webhook.retryPolicy.backoffMs",
                self.webhook.retry_backoff_ms,
                100,
                3_600_000,
            ),
            within(
                "circuitBreaker.failureThreshold",
                self.circuit_breaker.failure_threshold,
                1,
                1_000,
            ),
            within(
                "circuitBreaker.resetTimeoutMs",
                self.circuit_breaker.reset_timeout_ms,
                1_000,
                3_600_000,
            ),
        ]
        .into_iter()
        .filter_map(Result::err)
        .collect();
        for name in &self.sync.enabled_types {
            if sync_type(name).is_none() {
                problems.push(ConfigError {
                    field: "sync.enabledTypes",
                    problem: format!(
                        "{name:?} is not one of availability, pricing, listing_details, reservations"
                    ),
                });
            }
        }
        let schedules = &self.sync.schedules;
        for (field, kind, pattern) in [
            (
                "sync.schedules.availability",
                SyncKind::Availability,
                &schedules.availability,
            ),
            (
                "sync.schedules.pricing",
                SyncKind::Pricing,
                &schedules.pricing,
            ),
            (
                "sync.schedules.listings",
                SyncKind::Listing,
                &schedules.listings,
            ),
        ] {
            if !pattern.trim().eq_ignore_ascii_case("off")
                && let Err(error) = Schedule::parse(kind, pattern)
            {
                problems.push(ConfigError {
                    field,
                    problem: error.problem,
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The account's own reconciliation schedule for `kind` (`off`
    /// included), when it is not the specification's default; `None`: the
    /// account follows the fleet's schedule (`SYNC_SCHEDULE_*`, sliced).
    pub fn own_schedule(&self, kind: SyncKind) -> Option<&str> {
        let defaults = ChannelConfig::default();
        let (own, default) = match kind {
            SyncKind::Availability => (
                &self.sync.schedules.availability,
                defaults.sync.schedules.availability,
            ),
            SyncKind::Pricing => (
                &self.sync.schedules.pricing,
                defaults.sync.schedules.pricing,
            ),
            SyncKind::Listing => (
                &self.sync.schedules.listings,
                defaults.sync.schedules.listings,
            ),
            SyncKind::Reservations => return None,
        };
        (own.trim() != default).then_some(own.trim())
    }

    /// Requests per Hostaway window of 10 s the account's budget grants.
    pub fn requests_per_window(&self, hostaway_limit: u32) -> u32 {
        (self.rate_limit.max_requests_per_minute / 6).clamp(1, hostaway_limit)
    }

    pub fn syncs(&self, kind: SyncKind) -> bool {
        self.sync.enabled_types.contains(sync_type_name(kind))
    }

    pub fn from_json(value: serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(value)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// The configuration in force for `account` and its version (0: defaults).
/// A stored configuration that no longer reads (written by a newer version
/// of the connector) falls back to the defaults, loudly.
pub async fn in_force(
    pool: &PgPool,
    account: &AccountId,
) -> Result<(i32, ChannelConfig), store::StoreError> {
    match store::channel_config::current(pool, account).await? {
        None => Ok((0, ChannelConfig::default())),
        Some(stored) => match ChannelConfig::from_json(stored.config) {
            Ok(config) => Ok((stored.version, config)),
            Err(error) => {
                tracing::error!(account_id = %account, version = stored.version, %error,
                    "stored channel configuration does not read; running on the defaults");
                Ok((0, ChannelConfig::default()))
            }
        },
    }
}

impl ChannelConfig {
    /// What the Hostaway client takes from it: the timeout, the attempts
    /// (`maxRetries` after the first) and the circuit's settings.
    pub fn client_settings(&self) -> AccountSettings {
        AccountSettings {
            timeout: Some(Duration::from_millis(u64::from(self.api.timeout_ms))),
            max_attempts: Some(self.api.max_retries.saturating_add(1)),
            breaker: Some(BreakerSettings {
                enabled: self.circuit_breaker.enabled,
                failure_threshold: self.circuit_breaker.failure_threshold,
                reset_timeout: Duration::from_millis(u64::from(
                    self.circuit_breaker.reset_timeout_ms,
                )),
            }),
        }
    }
}

/// Each account's client settings, from its stored configuration; an account
/// never configured keeps the client's (the environment's).
#[derive(Debug, Clone)]
pub struct StoredSettings {
    pool: PgPool,
}

impl StoredSettings {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl AccountSettingsSource for StoredSettings {
    fn settings<'a>(&'a self, account: &'a AccountId) -> BoxFuture<'a, Option<AccountSettings>> {
        Box::pin(async move {
            match in_force(&self.pool, account).await {
                Ok((0, _)) => None,
                Ok((_, config)) => Some(config.client_settings()),
                Err(error) => {
                    tracing::warn!(account_id = %account, %error,
                        "cannot read the account's configuration; calling it with the defaults");
                    None
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_defaults_are_the_specification_s_and_valid() {
        let config = ChannelConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.api.timeout_ms, 30_000);
        assert_eq!(config.sync.schedules.availability, "*/15 * * * *");
        assert!(SyncKind::ALL.iter().all(|kind| config.syncs(*kind)));
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let mut config = ChannelConfig::default();
        config.api.timeout_ms = 0;
        config.rate_limit.max_requests_per_minute = 10_000;
        config.sync.enabled_types.insert("calendar".into());
        config.sync.schedules.pricing = "every hour".into();
        let fields: Vec<_> = config
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "api.timeout",
                "rateLimit.maxRequestsPerMinute",
                "sync.enabledTypes",
                "sync.schedules.pricing"
            ]
        );
    }

    #[test]
    fn a_schedule_may_be_off_and_a_type_left_out() {
        let mut config = ChannelConfig::default();
        config.sync.schedules.listings = "off".into();
        config.sync.enabled_types.remove("pricing");
        assert_eq!(config.validate(), Ok(()));
        assert!(!config.syncs(SyncKind::Pricing));
        assert!(config.syncs(SyncKind::Availability));
    }

    #[test]
    fn only_a_schedule_other_than_the_default_is_the_account_s_own() {
        let mut config = ChannelConfig::default();
        assert_eq!(config.own_schedule(SyncKind::Availability), None);
        config.sync.schedules.availability = "*/5 * * * *".into();
        config.sync.schedules.listings = "off".into();
        assert_eq!(
            config.own_schedule(SyncKind::Availability),
            Some("*/5 * * * *")
        );
        assert_eq!(config.own_schedule(SyncKind::Listing), Some("off"));
        assert_eq!(config.own_schedule(SyncKind::Pricing), None);
        assert_eq!(config.own_schedule(SyncKind::Reservations), None);
    }

    #[test]
    fn stored_json_round_trips_and_unknown_fields_are_refused() {
        let config = ChannelConfig::default();
        assert_eq!(ChannelConfig::from_json(config.to_json()).unwrap(), config);
        let mut json = config.to_json();
        json["api"]["baseUrl"] = serde_json::json!("https://example.org");
        assert!(ChannelConfig::from_json(json).is_err());
    }
}
