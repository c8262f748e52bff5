//! Per-account configuration: the specification's `HostawayChannelConfig`,
//! validated, versioned, and read by the dispatchers when each job runs.

use domain::{AccountId, SyncKind};
use serde_json::json;
use store::channel_config::Saved;
use sync_dispatcher::channel_config::{
    ApiSettings, ChannelConfig, CircuitBreakerSettings, RateLimitSettings, SyncSchedules,
    SyncSettings, WebhookSettings,
};
use sync_dispatcher::queue::Mode;
use tonic::Status;

use crate::auth::Caller;
use crate::convert::{account as parse_account, store_status, timestamp};
use crate::proto;
use crate::service::{Context, Detail};

fn to_message(
    account: &AccountId,
    stored: Option<&store::channel_config::StoredConfig>,
    config: &ChannelConfig,
) -> proto::ChannelConfig {
    proto::ChannelConfig {
        account_id: account.to_string(),
        version: stored.map_or(0, |s| s.version),
        set_at: stored.map(|s| timestamp(s.set_at)),
        set_by: stored.map(|s| s.set_by.clone()).unwrap_or_default(),
        api: Some(proto::ApiSettings {
            timeout_ms: config.api.timeout_ms,
            max_retries: config.api.max_retries,
        }),
        rate_limit: Some(proto::RateLimitSettings {
            max_requests_per_minute: config.rate_limit.max_requests_per_minute,
            burst_capacity: config.rate_limit.burst_capacity,
        }),
        sync: Some(proto::SyncSettings {
            enabled_types: config.sync.enabled_types.iter().cloned().collect(),
            availability_schedule: config.sync.schedules.availability.clone(),
            pricing_schedule: config.sync.schedules.pricing.clone(),
            listings_schedule: config.sync.schedules.listings.clone(),
        }),
        webhook: Some(proto::WebhookSettings {
            enabled: config.webhook.enabled,
            retry_max_attempts: config.webhook.retry_max_attempts,
            retry_backoff_ms: config.webhook.retry_backoff_ms,
        }),
        circuit_breaker: Some(proto::CircuitBreakerSettings {
            enabled: config.circuit_breaker.enabled,
            failure_threshold: config.circuit_breaker.failure_threshold,
            reset_timeout_ms: config.circuit_breaker.reset_timeout_ms,
        }),
    }
}

/// A whole configuration from a message; every section is required (a
/// missing one would silently reset settings to zero).
fn from_message(message: &proto::ChannelConfig) -> Result<ChannelConfig, Status> {
    let missing = |section: &str| Status::invalid_argument(format!("config.{section} is required"));
    let api = message.api.as_ref().ok_or_else(|| missing("api"))?;
    let rate = message
        .rate_limit
        .as_ref()
        .ok_or_else(|| missing("rate_limit"))?;
    let sync = message.sync.as_ref().ok_or_else(|| missing("sync"))?;
    let webhook = message.webhook.as_ref().ok_or_else(|| missing("webhook"))?;
    let breaker = message
        .circuit_breaker
        .as_ref()
        .ok_or_else(|| missing("circuit_breaker"))?;
    Ok(ChannelConfig {
        api: ApiSettings {
            timeout_ms: api.timeout_ms,
            max_retries: api.max_retries,
        },
        rate_limit: RateLimitSettings {
            max_requests_per_minute: rate.max_requests_per_minute,
            burst_capacity: rate.burst_capacity,
        },
        sync: SyncSettings {
            enabled_types: sync
                .enabled_types
                .iter()
                .map(|t| t.trim().to_owned())
                .collect(),
            schedules: SyncSchedules {
                availability: sync.availability_schedule.trim().to_owned(),
                pricing: sync.pricing_schedule.trim().to_owned(),
                listings: sync.listings_schedule.trim().to_owned(),
            },
        },
        webhook: WebhookSettings {
            enabled: webhook.enabled,
            retry_max_attempts: webhook.retry_max_attempts,
            retry_backoff_ms: webhook.retry_backoff_ms,
        },
        circuit_breaker: CircuitBreakerSettings {
            enabled: breaker.enabled,
            failure_threshold: breaker.failure_threshold,
            reset_timeout_ms: breaker.reset_timeout_ms,
        },
    })
}

pub async fn get(
    ctx: &Context,
    req: proto::GetChannelConfigRequest,
) -> Result<(proto::ChannelConfig, Detail), Status> {
    let account = parse_account(&req.account_id)?;
    crate::accounts::require(ctx, &account).await?;
    let stored = store::channel_config::current(&ctx.pool, &account)
        .await
        .map_err(store_status)?;
    let (_, config) = sync_dispatcher::channel_config::in_force(&ctx.pool, &account)
        .await
        .map_err(store_status)?;
    Ok((to_message(&account, stored.as_ref(), &config), Detail::Null))
}

pub async fn update(
    ctx: &Context,
    caller: &Caller,
    req: proto::UpdateChannelConfigRequest,
) -> Result<(proto::ChannelConfig, Detail), Status> {
    let account = parse_account(&req.account_id)?;
    let message = req
        .config
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("config is required"))?;
    let config = from_message(message)?;
    if let Err(problems) = config.validate() {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(Status::invalid_argument(format!(
            "invalid configuration: {}",
            text.join("; ")
        )));
    }
    crate::accounts::require(ctx, &account).await?;
    let (_, before) = sync_dispatcher::channel_config::in_force(&ctx.pool, &account)
        .await
        .map_err(store_status)?;
    let expected = (!req.force).then_some(req.expected_version);
    let saved = store::channel_config::set(
        &ctx.pool,
        &account,
        expected,
        &config.to_json(),
        &caller.name,
    )
    .await
    .map_err(store_status)?;
    // The configuration is saved: what follows is best effort, reported in
    // the audit detail, and done again by the same call repeated.
    let mut queued = 0;
    let mut not_done = Vec::new();
    if let Saved::New(_) = saved {
        // Sync types turned on again: what TVL wanted meanwhile is pushed
        // now, not at the next reconciliation.
        for kind in [SyncKind::Availability, SyncKind::Pricing, SyncKind::Listing] {
            if config.syncs(kind) && !before.syncs(kind) {
                match crate::sync::queue_listings(ctx, &account, None, kind, Mode::Push).await {
                    Ok(n) => queued += n,
                    Err(status) => {
                        not_done.push(format!("{kind} pushes not queued: {}", status.message()))
                    }
                }
            }
        }
    }
    // The webhook at Hostaway follows `webhook.enabled` (left alone when it
    // already does, so a repeated call retries a switch that failed).
    let summary = crate::accounts::require(ctx, &account).await?;
    let registered =
        summary.has_api_key && summary.has_webhook_password && summary.webhook_login.is_some();
    if registered
        && let Err(status) = crate::accounts::ensure_webhook(ctx, &account, None, false).await
    {
        tracing::warn!(code = ?status.code(), message = status.message(),
            "the webhook at Hostaway could not be switched; the setting is saved, call again to retry");
        not_done.push(format!(
            "webhook at Hostaway not switched: {}",
            status.message()
        ));
    }
    let stored = store::channel_config::current(&ctx.pool, &account)
        .await
        .map_err(store_status)?;
    let detail = json!({
        "version": saved.version(),
        "changed": matches!(saved, Saved::New(_)),
        "config": config.to_json(),
        "pushesQueued": queued,
        "notDone": not_done,
    });
    Ok((to_message(&account, stored.as_ref(), &config), detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_survives_the_message_both_ways() {
        let mut config = ChannelConfig::default();
        config.sync.enabled_types.remove("pricing");
        config.api.timeout_ms = 5_000;
        let account = AccountId::parse("1").unwrap();
        let message = to_message(&account, None, &config);
        assert_eq!(message.version, 0);
        assert_eq!(from_message(&message).unwrap(), config);
    }

    #[test]
    fn a_message_without_a_section_is_refused() {
        let account = AccountId::parse("1").unwrap();
        let mut message = to_message(&account, None, &ChannelConfig::default());
        message.circuit_breaker = None;
        let error = from_message(&message).unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert!(error.message().contains("circuit_breaker"));
    }
}
