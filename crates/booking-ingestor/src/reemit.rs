//! Re-emitting booking events from the bookings table, for a TVL consumer
//! that was down longer than the events stream keeps events
//! (`hostaway-admin events replay --since …`). Each booking changed since the
//! given instant is published once more in its current state, marked
//! `replayed`, with an event id derived from the booking and its revision
//! (replaying twice publishes each state once).

use chrono::{DateTime, Utc};
use domain::AccountId;
use store::PgPool;
use store::bookings::ChangedCursor;

use crate::event_builders;
use crate::outbox::EventPublisher;

/// Bookings read and published per round.
const PAGE: i64 = 500;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reemitted {
    /// Events JetStream acknowledged.
    pub published: usize,
    /// Events it did not (run the command again: the ids make it harmless).
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReemitError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Publishes the current state of every booking changed at or after `since`
/// (of one account, if given). `progress` is told the running total.
pub async fn reemit(
    pool: &PgPool,
    publisher: &EventPublisher,
    since: DateTime<Utc>,
    account: Option<&AccountId>,
    mut progress: impl FnMut(Reemitted),
) -> Result<Reemitted, ReemitError> {
    let mut total = Reemitted::default();
    let mut after: Option<ChangedCursor> = None;
    loop {
        let page = store::bookings::changed_since(pool, since, account, after, PAGE).await?;
        let Some((_, last)) = page.last() else {
            break;
        };
        after = Some(*last);
        let events: Vec<_> = page
            .iter()
            .map(|(booking, _)| event_builders::booking_replayed(booking))
            .collect();
        let acked = publisher.publish(&events).await;
        total.published += acked.len();
        total.failed += events.len() - acked.len();
        progress(total);
        if page.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
            break;
        }
    }
    Ok(total)
}
