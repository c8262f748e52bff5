//! Reservation polling: the safety net for lost webhooks. Each account's
//! reservations changed since its cursor are read back, and each is fed to the
//! ingestor exactly as a webhook would be (the same stream, deduplication and
//! ordering rule); so are the reservations the ingestor asked to fetch
//! because their webhook was incomplete. Polling is inbound work: it shares
//! the sync queue, the lease and the API budget with the outbound jobs, and
//! nothing else.

use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use domain::AccountId;
use hostaway_client::{ErrorKind, HostawayClient, ReservationsQuery};
use serde_json::{Map, Value, json};
use service_kit::nats::Topology;
use service_kit::publish::Publisher;
use store::PgPool;
use uuid::Uuid;

use crate::metrics::SyncMetrics;
use crate::worker::{Calls, JobError, Report};

/// Reservations per page when polling.
const POLL_PAGE: u32 = 100;
/// Reservations fetched one by one per polling run at most (the rest wait
/// for the next run).
const MAX_FETCHES_PER_RUN: i64 = 20;
/// Hostaway's date-time format.
const HOSTAWAY_TIME: &str = "%Y-%m-%d %H:%M:%S";

#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Each poll re-reads this far behind its cursor (clock skew,
    /// same-second updates).
    pub overlap: Duration,
    /// How far back the first poll of an account looks.
    pub lookback: Duration,
    /// How long feeding one reservation to the webhooks stream may take.
    pub publish_timeout: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            overlap: Duration::from_secs(600),
            lookback: Duration::from_secs(24 * 3600),
            publish_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug)]
pub struct ReservationPoller {
    pub pool: PgPool,
    pub client: HostawayClient,
    /// Where polled reservations go: the webhooks stream, like a webhook.
    pub inbound: Publisher,
    pub topology: Topology,
    pub metrics: SyncMetrics,
    pub settings: PollSettings,
    /// This process, in the ids of what it feeds.
    pub holder: Uuid,
}

impl ReservationPoller {
    /// Fetches the reservations the ingestor asked for (a webhook of theirs
    /// was incomplete), then pages through the account's reservations
    /// changed since the cursor; each goes to the ingestor exactly as a
    /// webhook would: the same stream, the same deduplication, the same
    /// ordering rule (an API read wins a tie).
    pub(crate) async fn poll(
        &self,
        account: &AccountId,
        calls: &mut Calls<'_>,
    ) -> Result<Report, JobError> {
        self.fetch_requested(account, calls).await?;
        let cursor = store::sync_jobs::poll_cursor(&self.pool, account).await?;
        let started = Utc::now().naive_utc();
        // A cursor ahead of this clock (a stamp from the future, stored before
        // such stamps were refused) is read as now, so it cannot skip what
        // happens until the clock catches up.
        let since = cursor
            .as_deref()
            .and_then(|c| NaiveDateTime::parse_from_str(c, HOSTAWAY_TIME).ok())
            .map(|c| {
                c.min(started)
                    - chrono::Duration::from_std(self.settings.overlap).unwrap_or_default()
            })
            .unwrap_or_else(|| {
                started - chrono::Duration::from_std(self.settings.lookback).unwrap_or_default()
            });
        let mut query = ReservationsQuery {
            limit: Some(POLL_PAGE),
            latest_activity_start: Some(since.format(HOSTAWAY_TIME).to_string()),
            sort_order: Some("updatedOn".into()),
            ..ReservationsQuery::default()
        };
        let mut newest = cursor.clone();
        let mut seen = 0u64;
        // The cursor never passes this poll's own start: activity stamped later
        // (clock skew, bad data) is read again next time rather than skipped.
        let horizon = started.format(HOSTAWAY_TIME).to_string();
        loop {
            let answer = self.client.list_reservations(account, &query).await;
            calls.count(&answer);
            let page = answer.map_err(|e| {
                JobError::api(
                    e,
                    json!({"reading": "reservations", "since": query.latest_activity_start}),
                )
            })?;
            // A record without an id can be neither fed nor paged after; it
            // must not stall the account's polling either.
            let Some(last_id) = page.iter().rev().find_map(|r| text(r.get("id"))) else {
                break;
            };
            for reservation in &page {
                if text(reservation.get("id")).is_none() {
                    tracing::warn!("polled reservation without an id; skipped");
                    continue;
                }
                self.feed(account, reservation, events::pb::Source::Reconciliation)
                    .await?;
                seen += 1;
                if let Some(activity) = poll_mark(reservation, &horizon)
                    && newest.as_deref().is_none_or(|n| activity.as_str() > n)
                {
                    newest = Some(activity);
                }
            }
            if query.after_id.as_deref() == Some(last_id.as_str())
                || page.len() < POLL_PAGE as usize
            {
                break;
            }
            query.after_id = Some(last_id);
        }
        self.metrics.reservations_polled.inc_by(seen);
        // Nothing newer seen: everything up to this poll's start has been
        // read, so the cursor moves there (and shows the account polled).
        let newest = newest.unwrap_or(horizon);
        store::sync_jobs::advance_poll_cursor(&self.pool, account, &newest, seen).await?;
        tracing::info!(reservations = seen, "reservations polled");
        Ok(Report { ranges: 0 })
    }

    /// Fetches each reservation the ingestor asked for and feeds it. A
    /// request Hostaway refuses for good (not found, forbidden, invalid) is
    /// dropped, and said; a transient failure leaves the rest for the next
    /// run, and polling goes on (one bad request must not stop it).
    async fn fetch_requested(
        &self,
        account: &AccountId,
        calls: &mut Calls<'_>,
    ) -> Result<(), JobError> {
        let requested =
            store::sync_jobs::pending_fetches(&self.pool, account, MAX_FETCHES_PER_RUN).await?;
        for id in requested {
            let Ok(reservation) = domain::ReservationId::parse(id.as_str()) else {
                store::sync_jobs::fetch_done(&self.pool, account, &id).await?;
                continue;
            };
            let answer = self.client.get_reservation(account, &reservation).await;
            calls.count(&answer);
            match answer {
                Ok(record) => {
                    self.feed(account, &record, events::pb::Source::ApiFetch)
                        .await?;
                    self.metrics.reservations_fetched.inc();
                    tracing::info!(reservation_id = %id, "incomplete reservation fetched from the API");
                }
                Err(error) if error.kind == ErrorKind::CircuitOpen || error.retryable => {
                    tracing::warn!(reservation_id = %id, %error, "reservation not fetched now; the next poll tries again");
                    return Ok(());
                }
                Err(error) => {
                    tracing::warn!(reservation_id = %id, %error, "Hostaway refuses the reservation an incomplete webhook named; the request is dropped (the webhook waits for its reservation's next webhook or poll)");
                }
            }
            store::sync_jobs::fetch_done(&self.pool, account, &id).await?;
        }
        Ok(())
    }

    async fn feed(
        &self,
        account: &AccountId,
        reservation: &Map<String, Value>,
        source: events::pb::Source,
    ) -> Result<(), JobError> {
        let outgoing = service_kit::inbound::api_read(
            &self.topology,
            account,
            reservation,
            source,
            format!("poll-{}", self.holder),
        );
        self.inbound
            .publish(outgoing.subject, &outgoing.webhook_id, outgoing.payload)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "cannot feed a reservation read from the API; the poll runs again later");
                JobError::Defer {
                    reason: "nats",
                    delay: Duration::from_secs(5),
                }
            })?;
        Ok(())
    }
}

/// Where a polled reservation puts the cursor: the field the poll filters on
/// (`latestActivityOn`), else `updatedOn`; never a stamp past `horizon` (the
/// poll's start), which would pin the cursor ahead of activity yet to come.
fn poll_mark(reservation: &Map<String, Value>, horizon: &str) -> Option<String> {
    ["latestActivityOn", "updatedOn"]
        .iter()
        .find_map(|field| text(reservation.get(*field)))
        .filter(|stamp| {
            NaiveDateTime::parse_from_str(stamp, HOSTAWAY_TIME).is_ok() && stamp.as_str() <= horizon
        })
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reservation(fields: Value) -> Map<String, Value> {
        match fields {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn the_poll_cursor_follows_latest_activity_and_ignores_the_future() {
        let horizon = "2026-11-28 12:00:00";
        let both = reservation(json!({
            "id": 1, "latestActivityOn": "2026-11-28 10:00:00", "updatedOn": "2026-11-28 09:00:00"
        }));
        assert_eq!(
            poll_mark(&both, horizon).as_deref(),
            Some("2026-11-28 10:00:00")
        );
        let updated_only = reservation(json!({"id": 2, "updatedOn": "2026-11-28 09:00:00"}));
        assert_eq!(
            poll_mark(&updated_only, horizon).as_deref(),
            Some("2026-11-28 09:00:00")
        );
        let future = reservation(json!({"id": 3, "latestActivityOn": "2031-01-01 00:00:00"}));
        assert_eq!(poll_mark(&future, horizon), None, "would pin the cursor");
        let ahead = reservation(json!({"id": 5, "latestActivityOn": "2026-11-28 12:00:01"}));
        assert_eq!(
            poll_mark(&ahead, horizon),
            None,
            "a second past the poll's start"
        );
        let garbage = reservation(json!({"id": 4, "latestActivityOn": "yesterday"}));
        assert_eq!(poll_mark(&garbage, horizon), None);
    }
}
