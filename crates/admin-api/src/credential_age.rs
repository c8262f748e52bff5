//! How old the accounts' credentials are: a gauge of those past the
//! rotation age (the alert `HostawayCredentialsRotationDue` fires on it) and
//! the age of the oldest. Every replica measures the same rows; the alert
//! takes the maximum.

use std::time::Duration;

use chrono::{DateTime, Utc};
use store::PgPool;
use store::accounts::AccountSummary;
use tokio_util::sync::CancellationToken;

use crate::metrics::ApiMetrics;

/// Credentials older than `max_age`, and the oldest age in seconds.
pub fn measure(
    accounts: &[AccountSummary],
    now: DateTime<Utc>,
    max_age: chrono::Duration,
) -> (i64, i64) {
    let ages = accounts
        .iter()
        .flat_map(|a| a.set_at.each())
        .map(|(_, at)| now - at);
    let mut due = 0;
    let mut oldest = 0;
    for age in ages {
        if age > max_age {
            due += 1;
        }
        oldest = oldest.max(age.num_seconds());
    }
    (due, oldest)
}

pub async fn watch(
    pool: PgPool,
    metrics: ApiMetrics,
    max_age: chrono::Duration,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store::accounts::list_accounts(&pool).await {
            Ok(accounts) => {
                let (due, oldest) = measure(&accounts, Utc::now(), max_age);
                metrics.rotation_due.set(due);
                metrics.oldest_credential.set(oldest);
            }
            Err(error) => tracing::warn!(%error, "cannot measure credential ages"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::AccountId;
    use store::accounts::CredentialTimes;

    fn account(set_at: CredentialTimes) -> AccountSummary {
        AccountSummary {
            account: AccountId::parse("1").unwrap(),
            display_name: None,
            webhook_login: None,
            has_api_key: true,
            has_webhook_password: true,
            has_webhook_secret: false,
            rotation_until: None,
            enabled: true,
            updated_at: Utc::now(),
            set_at,
        }
    }

    #[test]
    fn credentials_past_ninety_days_are_counted_and_the_oldest_measured() {
        let now = Utc::now();
        let days = |n| Some(now - chrono::Duration::days(n));
        let accounts = [
            account(CredentialTimes {
                api_key: days(100),
                webhook_password: days(3),
                webhook_secret: None,
            }),
            account(CredentialTimes {
                api_key: days(91),
                webhook_password: days(89),
                webhook_secret: None,
            }),
            account(CredentialTimes::default()),
        ];
        let (due, oldest) = measure(&accounts, now, chrono::Duration::days(90));
        assert_eq!(due, 2);
        assert_eq!(oldest, 100 * 86_400);
        assert_eq!(measure(&[], now, chrono::Duration::days(90)), (0, 0));
    }
}
