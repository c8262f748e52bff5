//! Several webhooks, one transaction.
//!
//! A burst is applied in batches: the log rows of the whole batch in one
//! statement, every reservation it touches locked in one statement (in one
//! order, whoever asks), the stored bookings and the listing links read in one
//! statement each, the versions of each reservation folded in memory in the
//! order they came (so a batch holding two versions of one reservation ends
//! in the greatest, as one-by-one delivery does), the units whose blocks move
//! locked in one statement, and the events written in one. What a webhook
//! does to its own booking (save, block, overlaps) stays one statement each.
//!
//! Guest messages and listing changes are forwarded after the batch's
//! bookings are written: a message that came before its reservation's first
//! webhook in the same batch already names the booking. A webhook that ends
//! parked leaves its `webhook_log` row `processing` in the committed batch
//! until its parking commits (or, if that fails, until it is delivered
//! again and applied).
//!
//! Nothing about a batch can hold a webhook back: a webhook that cannot be
//! mapped, or must wait (parked), gets its own outcome and the others go on;
//! a transaction that fails as a whole (a statement error, a deadlock, a
//! timeout) is applied again one webhook at a time, so a poisoned webhook is
//! retried, counted and dead-lettered alone.

use std::collections::{HashMap, HashSet, VecDeque};

use domain::{AccountId, ListingId, ReservationId, ReservationUpdate, UnitId};
use mapping::Adjustment;
use store::bookings::{self, StoredBooking};
use store::webhook_log::{self, Finished, Prior, WebhookMeta};
use store::{PgConnection, PgPool};
use tracing::Instrument;

use crate::ingest::{self, Applied, Decided, Inbound, IngestError, Work, decide_update, place};

/// The longest a batch waits for a lock before it is applied one webhook
/// at a time (a batch's own locks are held for milliseconds).
const BATCH_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Applies `inbounds` in as few transactions as their content allows;
/// returns each webhook's outcome, in the order given.
pub async fn apply_batch(pool: &PgPool, inbounds: &[Inbound]) -> Vec<Result<Applied, IngestError>> {
    if inbounds.len() <= 1 {
        let mut outcomes = Vec::with_capacity(1);
        for inbound in inbounds {
            outcomes.push(ingest::apply(pool, inbound).await);
        }
        return outcomes;
    }
    let mut outcomes: Vec<Option<Result<Applied, IngestError>>> =
        inbounds.iter().map(|_| None).collect();
    let mut batch = Vec::with_capacity(inbounds.len());
    // A second copy of a webhook waits for the first's transaction, as a
    // redelivery does: it is applied on its own after the batch.
    let mut repeated = Vec::new();
    let mut ids = HashSet::with_capacity(inbounds.len());
    for (index, inbound) in inbounds.iter().enumerate() {
        match ingest::prepare(inbound) {
            Err(error) => outcomes[index] = Some(Err(error)),
            Ok(_) if !ids.insert(inbound.webhook_id.as_str()) => repeated.push(index),
            Ok((work, adjustments)) => batch.push(Prepared {
                index,
                inbound,
                object_id: work.object_id(),
                work,
                adjustments,
            }),
        }
    }
    if batch.len() == 1 {
        repeated.extend(batch.drain(..).map(|p| p.index));
        repeated.sort_unstable();
    }
    if !batch.is_empty() {
        let span = tracing::info_span!(
            "hostaway.webhook.create_booking",
            "db.system" = "postgresql",
            batch_size = batch.len(),
        );
        let indexes: Vec<usize> = batch.iter().map(|p| p.index).collect();
        match apply_together(pool, batch).instrument(span).await {
            Ok(applied) => {
                for (index, outcome) in applied {
                    outcomes[index] = Some(outcome);
                }
            }
            Err(error) => {
                tracing::warn!(
                    reason = error.reason(),
                    %error,
                    webhooks = indexes.len(),
                    "the batch's transaction failed; applying its webhooks one at a time"
                );
                for index in indexes {
                    outcomes[index] = Some(ingest::apply(pool, &inbounds[index]).await);
                }
            }
        }
    }
    for index in repeated {
        outcomes[index] = Some(ingest::apply(pool, &inbounds[index]).await);
    }
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| {
                Err(IngestError::Permanent {
                    reason: "panic",
                    message: "a webhook of the batch was left without an outcome".into(),
                })
            })
        })
        .collect()
}

/// A webhook of the batch, mapped.
struct Prepared<'a> {
    index: usize,
    inbound: &'a Inbound,
    work: Work,
    adjustments: Vec<Adjustment>,
    object_id: String,
}

/// An applied version of a booking, waiting to be written.
struct Version {
    index: usize,
    webhook_id: String,
    stored: StoredBooking,
    change: Option<domain::ChangeKind>,
    adjustments: Vec<Adjustment>,
}

type ReservationKey = (AccountId, ReservationId);

/// The batch's one transaction. `Err` only when the transaction as a whole
/// failed (nothing of it committed).
async fn apply_together(
    pool: &PgPool,
    batch: Vec<Prepared<'_>>,
) -> Result<Vec<(usize, Result<Applied, IngestError>)>, IngestError> {
    let identities: Vec<ingest::Identity> = batch.iter().map(|p| p.inbound.identity()).collect();
    let metas: Vec<WebhookMeta<'_>> = identities
        .iter()
        .zip(&batch)
        .map(|(identity, prepared)| WebhookMeta {
            object_id: Some(prepared.object_id.as_str()),
            ..identity.meta()
        })
        .collect();
    let webhook_ids: HashMap<usize, String> = batch
        .iter()
        .map(|p| (p.index, p.inbound.webhook_id.clone()))
        .collect();
    let mut tx = pool.begin().await?;
    store::batch_transaction(&mut tx, BATCH_LOCK_WAIT).await?;
    let priors = webhook_log::begin_many(&mut tx, &metas).await?;

    let mut outcomes: Vec<(usize, Result<Applied, IngestError>)> = Vec::with_capacity(batch.len());
    let mut repeats = Vec::new();
    let mut failed_before = HashSet::new();
    let mut groups: Vec<(ReservationKey, VecDeque<Pending>)> = Vec::new();
    let mut group_of: HashMap<ReservationKey, usize> = HashMap::new();
    let mut others = Vec::new();
    for (prepared, prior) in batch.into_iter().zip(priors) {
        match prior {
            Prior::Processed => {
                repeats.push(prepared.inbound.webhook_id.as_str());
                outcomes.push((prepared.index, Ok(Applied::outcome("repeat", None))));
                continue;
            }
            Prior::Unfinished { .. } => {
                failed_before.insert(prepared.index);
            }
            Prior::New => {}
        }
        let Prepared {
            index,
            inbound,
            work,
            adjustments,
            ..
        } = prepared;
        match work {
            Work::Reservation(update) => {
                let key = (update.account.clone(), update.reservation.clone());
                let group = *group_of.entry(key.clone()).or_insert_with(|| {
                    groups.push((key, VecDeque::new()));
                    groups.len() - 1
                });
                groups[group].1.push_back(Pending {
                    index,
                    webhook_id: inbound.webhook_id.clone(),
                    update: *update,
                    adjustments,
                });
            }
            other => others.push((index, inbound, other, adjustments)),
        }
    }
    store::parked::remove_many(&mut tx, &repeats).await?;

    // Every reservation of the batch, locked and read at once.
    let keys: Vec<(&AccountId, &ReservationId)> =
        groups.iter().map(|(key, _)| (&key.0, &key.1)).collect();
    let mut found = if keys.is_empty() {
        HashMap::new()
    } else {
        bookings::lock_reservations(&mut tx, &keys).await?;
        bookings::find_many(&mut tx, &keys).await?
    };
    let mut listings: Vec<(&AccountId, &ListingId)> = Vec::new();
    for (key, pending) in &groups {
        listings.extend(
            pending
                .iter()
                .filter_map(|p| p.update.listing.as_ref().map(|l| (&key.0, l))),
        );
        if let Some(stored) = found.get(key) {
            listings.push((&key.0, &stored.record.listing));
        }
    }
    listings.sort_unstable();
    listings.dedup();
    let links = if listings.is_empty() {
        HashMap::new()
    } else {
        store::links::resolve_units(&mut tx, &listings).await?
    };
    let links = Links {
        linked: links,
        asked: listings
            .into_iter()
            .map(|(a, l)| (a.clone(), l.clone()))
            .collect(),
    };

    // Each reservation's versions folded in the order they came.
    let mut folded: Vec<Vec<Version>> = Vec::with_capacity(groups.len());
    for (key, pending) in groups {
        let current = found.remove(&key);
        let (versions, settled) = fold(&mut tx, current, pending, &links).await?;
        outcomes.extend(settled);
        folded.push(versions);
    }
    let units: Vec<UnitId> = folded
        .iter()
        .filter_map(|versions| versions.last())
        .filter(|last| last.stored.record.calendar_block().is_some())
        .map(|last| last.stored.unit)
        .collect();
    bookings::lock_units(&mut tx, &units).await?;
    outcomes.extend(write(&mut tx, folded).await?);
    for (index, inbound, work, adjustments) in others {
        let mut applied = match work {
            Work::Message(message) => ingest::forward_message(&mut tx, &message).await?,
            Work::Listing(change, kind) => {
                ingest::forward_listing_change(&mut tx, inbound, &change, kind).await?
            }
            Work::Reservation(_) => continue,
        };
        applied.adjustments.splice(0..0, adjustments);
        outcomes.push((index, Ok(applied)));
    }

    // The events, written at once; an event already in the outbox (the same
    // content seen before) is not news.
    let events: Vec<&store::outbox::OutboxEvent> = outcomes
        .iter()
        .filter_map(|(_, outcome)| outcome.as_ref().ok())
        .flat_map(|applied| &applied.events)
        .collect();
    let mut fresh = store::outbox::enqueue_many(&mut tx, &events).await?;
    for (_, outcome) in &mut outcomes {
        let Ok(applied) = outcome else { continue };
        applied.events.retain(|event| fresh.remove(&event.id));
        if applied.events.is_empty() && applied.outcome == "forwarded" {
            applied.outcome = "duplicate";
            applied.reconcile.clear();
        }
    }

    let mut finished = Vec::with_capacity(outcomes.len());
    let mut resolved = Vec::new();
    for (index, outcome) in &outcomes {
        let Ok(applied) = outcome else { continue };
        if applied.outcome == "repeat" {
            continue;
        }
        let webhook_id = webhook_ids
            .get(index)
            .map(String::as_str)
            .unwrap_or_default();
        finished.push(Finished {
            webhook_id,
            outcome: applied.outcome,
            booking: applied.booking.map(|b| b.as_uuid()),
            adjustments: applied.noted_adjustments(),
        });
        if failed_before.contains(index) {
            resolved.push(webhook_id);
        }
    }
    webhook_log::finish_many(&mut tx, &finished).await?;
    for webhook_id in resolved {
        // A retry, a released parked webhook or a replayed dead letter,
        // applied at last.
        store::dlq::resolve_for_job(&mut tx, webhook_id).await?;
        store::parked::remove(&mut tx, webhook_id).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Writes the folded versions: the n-th version of every reservation in
/// the n-th statement (most reservations have one), each reservation's
/// final block in one statement for all, and the overlaps of the blocks
/// that moved in one. A block sees the blocks the batch moved before it
/// (by their final webhooks), not after, so each double booking is reported
/// once, by the later of the two, and the open double bookings end as
/// one-by-one delivery leaves them. Unlike one-by-one delivery, only final
/// positions are checked: a block that moved onto another booking's nights
/// and off them again within one batch reports nothing.
async fn write(
    tx: &mut PgConnection,
    mut folded: Vec<Vec<Version>>,
) -> Result<Vec<(usize, Result<Applied, IngestError>)>, IngestError> {
    let rounds = folded.iter().map(Vec::len).max().unwrap_or(0);
    for round in 0..rounds {
        let saving: Vec<&StoredBooking> = folded
            .iter()
            .filter_map(|versions| versions.get(round))
            .map(|version| &version.stored)
            .collect();
        let revisions = bookings::save_many(tx, &saving).await?;
        let mut revisions = revisions.into_iter();
        for version in folded
            .iter_mut()
            .filter_map(|versions| versions.get_mut(round))
        {
            version.stored.revision = revisions.next().unwrap_or_default();
        }
    }

    let mut written: Vec<(usize, Applied)> = Vec::new();
    // Per reservation: where its final version's outcome is, and the version.
    let mut finals: Vec<(usize, StoredBooking)> = Vec::with_capacity(folded.len());
    let mut created = Vec::new();
    for versions in folded {
        let last = versions.len().saturating_sub(1);
        for (position, version) in versions.into_iter().enumerate() {
            let mut applied = Applied::outcome(
                version.change.map_or("unchanged", |c| c.as_str()),
                Some(version.stored.id),
            );
            if let Some(change) = version.change {
                applied.events.push(crate::event_builders::booking_changed(
                    &version.stored,
                    change,
                    &version.webhook_id,
                ));
            }
            if version.change == Some(domain::ChangeKind::Created) {
                created.push((
                    version.stored.record.account.clone(),
                    version.stored.record.reservation.to_string(),
                ));
            }
            applied.adjustments = version.adjustments;
            if position == last {
                finals.push((written.len(), version.stored));
            }
            written.push((version.index, applied));
        }
    }
    // Partial payloads that overtook a reservation's first complete record
    // wait parked: they can be applied now.
    let created: Vec<(&AccountId, &str)> = created.iter().map(|(a, r)| (a, r.as_str())).collect();
    store::parked::wake_reservations(tx, &created).await?;

    let blocks: Vec<_> = finals
        .iter()
        .map(|(_, stored)| (stored.id, stored.unit, stored.record.calendar_block()))
        .collect();
    let changes = bookings::set_blocks(tx, &blocks).await?;
    let mut moved = Vec::new();
    let mut moved_at = HashMap::new();
    for ((at, stored), change) in finals.iter().zip(&changes) {
        if let (Some(block), bookings::BlockChange::Created | bookings::BlockChange::Moved) =
            (stored.record.calendar_block(), change)
        {
            moved_at.insert(stored.id, written[*at].0);
            moved.push((*at, stored, (stored.id, stored.unit, block)));
        }
    }
    let overlaps = bookings::overlapping_blocks_many(
        tx,
        &moved.iter().map(|(_, _, block)| *block).collect::<Vec<_>>(),
    )
    .await?;
    for ((at, stored, _), overlaps) in moved.iter().zip(overlaps) {
        let index = written[*at].0;
        for overlap in overlaps {
            if moved_at
                .get(&overlap.other)
                .is_some_and(|other| *other > index)
            {
                continue;
            }
            ingest::report_double_booking(tx, stored, &overlap, &mut written[*at].1).await?;
        }
    }
    for ((at, stored), change) in finals.iter().zip(changes) {
        ingest::after_block_change(tx, stored.id, change, &mut written[*at].1).await?;
    }
    Ok(written
        .into_iter()
        .map(|(index, applied)| (index, Ok(applied)))
        .collect())
}

/// A reservation webhook of the batch, before its fold.
struct Pending {
    index: usize,
    webhook_id: String,
    update: ReservationUpdate,
    adjustments: Vec<Adjustment>,
}

/// The listing links the batch read, and which it asked for.
struct Links {
    linked: HashMap<(AccountId, ListingId), UnitId>,
    asked: HashSet<(AccountId, ListingId)>,
}

impl Links {
    async fn unit(
        &self,
        tx: &mut PgConnection,
        account: &AccountId,
        listing: &ListingId,
    ) -> Result<Option<UnitId>, IngestError> {
        let key = (account.clone(), listing.clone());
        if self.asked.contains(&key) {
            return Ok(self.linked.get(&key).copied());
        }
        // A record whose listing neither the payloads nor the stored
        // booking named: read on its own.
        Ok(store::links::resolve_unit(tx, account, listing).await?)
    }
}

/// One reservation's webhooks folded into its stored booking, in the order
/// they came; returns the versions to write and the outcomes of the
/// webhooks that write nothing (stale, duplicate, parked). A partial payload
/// that came before the reservation's first complete record is folded again
/// after it, as its release from parking would.
async fn fold(
    tx: &mut PgConnection,
    mut current: Option<StoredBooking>,
    mut pending: VecDeque<Pending>,
    links: &Links,
) -> Result<(Vec<Version>, Vec<(usize, Result<Applied, IngestError>)>), IngestError> {
    let mut versions = Vec::new();
    let mut settled = Vec::new();
    let mut waiting: Vec<(Pending, IngestError)> = Vec::new();
    while let Some(next) = pending.pop_front() {
        let decided = decide_update(current.as_ref(), next.update.clone());
        let (decided, mut adjustments) = match decided {
            Ok(decided) => decided,
            Err(error @ IngestError::Park { .. }) if current.is_none() => {
                waiting.push((next, error));
                continue;
            }
            Err(error) => {
                settled.push((next.index, Err(error)));
                continue;
            }
        };
        let booking = current.as_ref().map(|c| c.id);
        let (record, change) = match decided {
            Decided::Stale | Decided::Duplicate => {
                let outcome = if matches!(decided, Decided::Stale) {
                    "stale"
                } else {
                    "duplicate"
                };
                let mut applied = Applied::outcome(outcome, booking);
                applied.adjustments = next.adjustments;
                settled.push((next.index, Ok(applied)));
                continue;
            }
            Decided::Apply { record, change } => (record, change),
        };
        let linked = links.unit(tx, &record.account, &record.listing).await?;
        let stored = match place(*record, current.as_ref(), linked) {
            Ok(stored) => stored,
            Err(error) => {
                settled.push((next.index, Err(error)));
                continue;
            }
        };
        if current.is_none() {
            pending.extend(waiting.drain(..).map(|(waiting, _)| waiting));
        }
        current = Some(stored.clone());
        adjustments.splice(0..0, next.adjustments);
        versions.push(Version {
            index: next.index,
            webhook_id: next.webhook_id,
            stored,
            change,
            adjustments,
        });
    }
    settled.extend(waiting.into_iter().map(|(p, error)| (p.index, Err(error))));
    Ok((versions, settled))
}
