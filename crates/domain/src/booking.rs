//! A booking as the connector stores it, and how one Hostaway payload changes it.

use chrono::NaiveDateTime;

use crate::{
    AccountId, CalendarEffect, ListingId, Money, Patch, ReservationId, ReservationStatus,
    StayDates, Version,
};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Guest {
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub number_of_guests: Option<i32>,
    pub adults: Option<i32>,
    pub children: Option<i32>,
    pub infants: Option<i32>,
    pub pets: Option<i32>,
}

/// What one payload says about the guest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestPatch {
    pub name: Patch<String>,
    pub first_name: Patch<String>,
    pub last_name: Patch<String>,
    pub email: Patch<String>,
    pub phone: Patch<String>,
    pub number_of_guests: Patch<i32>,
    pub adults: Patch<i32>,
    pub children: Patch<i32>,
    pub infants: Patch<i32>,
    pub pets: Patch<i32>,
}

impl GuestPatch {
    fn apply(self, current: Guest) -> Guest {
        Guest {
            name: self.name.apply(current.name),
            first_name: self.first_name.apply(current.first_name),
            last_name: self.last_name.apply(current.last_name),
            email: self.email.apply(current.email),
            phone: self.phone.apply(current.phone),
            number_of_guests: self.number_of_guests.apply(current.number_of_guests),
            adults: self.adults.apply(current.adults),
            children: self.children.apply(current.children),
            infants: self.infants.apply(current.infants),
            pets: self.pets.apply(current.pets),
        }
    }
}

/// One reservation payload, mapped and validated. Required booking fields are
/// `Option`s because Hostaway sometimes sends partial payloads; `null` cannot
/// clear them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationUpdate {
    pub account: AccountId,
    pub reservation: ReservationId,
    pub listing: Option<ListingId>,
    pub status: Option<ReservationStatus>,
    pub stay: Option<StayDates>,
    pub guest: GuestPatch,
    pub total: Patch<Money>,
    pub channel_id: Patch<i64>,
    pub channel_name: Patch<String>,
    pub channel_reservation_id: Patch<String>,
    pub confirmation_code: Patch<String>,
    pub cancelled_by: Patch<String>,
    pub cancelled_at: Patch<NaiveDateTime>,
    pub version: Version,
}

/// A booking's state: the merge of every payload up to its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRecord {
    pub account: AccountId,
    pub reservation: ReservationId,
    pub listing: ListingId,
    pub status: ReservationStatus,
    pub stay: StayDates,
    pub guest: Guest,
    pub total: Option<Money>,
    pub channel_id: Option<i64>,
    pub channel_name: Option<String>,
    pub channel_reservation_id: Option<String>,
    pub confirmation_code: Option<String>,
    pub cancelled_by: Option<String>,
    pub cancelled_at: Option<NaiveDateTime>,
    pub version: Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    Booking,
    OwnerStay,
}

impl BlockKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            BlockKind::Booking => "booking",
            BlockKind::OwnerStay => "owner_stay",
        }
    }
}

/// The nights a booking holds on its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CalendarBlock {
    pub kind: BlockKind,
    pub stay: StayDates,
}

impl BookingRecord {
    /// The block this booking holds, if its status holds one.
    pub fn calendar_block(&self) -> Option<CalendarBlock> {
        let kind = match self.status.calendar_effect() {
            CalendarEffect::GuestBlock => BlockKind::Booking,
            CalendarEffect::OwnerBlock => BlockKind::OwnerStay,
            CalendarEffect::Free => return None,
        };
        (self.stay.nights() > 0).then_some(CalendarBlock {
            kind,
            stay: self.stay,
        })
    }

    /// Equal in everything TVL can see, versions apart.
    fn same_content(&self, other: &BookingRecord) -> bool {
        let mut a = self.clone();
        a.version = other.version.clone();
        &a == other
    }
}

/// What TVL is told about a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Created,
    Updated,
    Cancelled,
}

impl ChangeKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Store `record`. `change` is what to tell TVL: `None` when the payload is
    /// newer but changes nothing TVL sees (the version still moves forward).
    Apply {
        record: Box<BookingRecord>,
        change: Option<ChangeKind>,
    },
    /// The stored version is newer: nothing changes.
    Stale,
    /// The stored version is this one: nothing changes.
    Duplicate,
}

/// A payload that cannot create a booking because it lacks what every booking
/// needs. It may become applicable once a complete payload for the same
/// reservation has arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payload cannot create a booking: missing {}", missing.join(", "))]
pub struct IncompleteReservation {
    pub missing: Vec<&'static str>,
}

/// Folds one payload into the current state.
///
/// Order-independence: `decide` keeps the payload with the greatest
/// [`Version`], so for complete payloads the final record is the greatest
/// version's, whatever the arrival order and however often each arrives. A
/// partial payload newer than the state is applied as a patch over it.
pub fn decide(
    current: Option<&BookingRecord>,
    update: ReservationUpdate,
) -> Result<Decision, IncompleteReservation> {
    let Some(current) = current else {
        return create(update).map(|record| Decision::Apply {
            record: Box::new(record),
            change: Some(ChangeKind::Created),
        });
    };
    if update.version == current.version {
        return Ok(Decision::Duplicate);
    }
    if update.version < current.version {
        return Ok(Decision::Stale);
    }
    let record = BookingRecord {
        account: current.account.clone(),
        reservation: current.reservation.clone(),
        listing: update.listing.unwrap_or_else(|| current.listing.clone()),
        status: update.status.unwrap_or_else(|| current.status.clone()),
        stay: update.stay.unwrap_or(current.stay),
        guest: update.guest.apply(current.guest.clone()),
        total: update.total.apply(current.total),
        channel_id: update.channel_id.apply(current.channel_id),
        channel_name: update.channel_name.apply(current.channel_name.clone()),
        channel_reservation_id: update
            .channel_reservation_id
            .apply(current.channel_reservation_id.clone()),
        confirmation_code: update
            .confirmation_code
            .apply(current.confirmation_code.clone()),
        cancelled_by: update.cancelled_by.apply(current.cancelled_by.clone()),
        cancelled_at: update.cancelled_at.apply(current.cancelled_at),
        version: update.version,
    };
    let change = if record.same_content(current) {
        None
    } else if record.status.is_terminal() && !current.status.is_terminal() {
        Some(ChangeKind::Cancelled)
    } else {
        Some(ChangeKind::Updated)
    };
    Ok(Decision::Apply {
        record: Box::new(record),
        change,
    })
}

fn create(update: ReservationUpdate) -> Result<BookingRecord, IncompleteReservation> {
    let mut missing = Vec::new();
    if update.listing.is_none() {
        missing.push("listing");
    }
    if update.status.is_none() {
        missing.push("status");
    }
    if update.stay.is_none() {
        missing.push("arrival and departure dates");
    }
    let (Some(listing), Some(status), Some(stay)) = (update.listing, update.status, update.stay)
    else {
        return Err(IncompleteReservation { missing });
    };
    Ok(BookingRecord {
        account: update.account,
        reservation: update.reservation,
        listing,
        status,
        stay,
        guest: update.guest.apply(Guest::default()),
        total: update.total.apply(None),
        channel_id: update.channel_id.apply(None),
        channel_name: update.channel_name.apply(None),
        channel_reservation_id: update.channel_reservation_id.apply(None),
        confirmation_code: update.confirmation_code.apply(None),
        cancelled_by: update.cancelled_by.apply(None),
        cancelled_at: update.cancelled_at.apply(None),
        version: update.version,
    })
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use proptest::prelude::*;

    use super::*;
    use crate::{Currency, EventRank, Origin};

    fn at(day: u32, second: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2025, 10, day)
            .and_then(|d| d.and_hms_opt(10, 0, second))
            .unwrap()
    }

    fn stay(from: u32, to: u32) -> StayDates {
        StayDates::new(
            NaiveDate::from_ymd_opt(2025, 11, from).unwrap(),
            NaiveDate::from_ymd_opt(2025, 11, to).unwrap(),
        )
        .unwrap()
    }

    fn update(
        status: &str,
        stay: StayDates,
        updated_at: Option<NaiveDateTime>,
        event: EventRank,
        tag: u8,
    ) -> ReservationUpdate {
        let status = ReservationStatus::parse(status);
        ReservationUpdate {
            account: AccountId::parse("59808").unwrap(),
            reservation: ReservationId::parse("49264388").unwrap(),
            listing: Some(ListingId::parse("218666").unwrap()),
            guest: GuestPatch {
                name: Patch::Set(format!("Guest {tag}")),
                ..GuestPatch::default()
            },
            total: Patch::Set(
                Money::from_minor_units(10_000 + i64::from(tag), Currency::parse("USD").unwrap())
                    .unwrap(),
            ),
            channel_id: Patch::Set(2018),
            channel_name: Patch::Set("airbnbOfficial".into()),
            channel_reservation_id: Patch::Clear,
            confirmation_code: Patch::Clear,
            cancelled_by: Patch::Clear,
            cancelled_at: Patch::Clear,
            version: Version {
                updated_at,
                terminal: status.is_terminal(),
                latest_activity: None,
                origin: Origin::Webhook,
                event,
                digest: [tag; 32],
            },
            status: Some(status),
            stay: Some(stay),
        }
    }

    fn fold(updates: &[ReservationUpdate]) -> Option<BookingRecord> {
        let mut state: Option<BookingRecord> = None;
        for u in updates {
            if let Ok(Decision::Apply { record, .. }) = decide(state.as_ref(), u.clone()) {
                state = Some(*record);
            }
        }
        state
    }

    fn lifecycle() -> Vec<ReservationUpdate> {
        vec![
            update("new", stay(21, 23), Some(at(24, 0)), EventRank::Created, 1),
            update(
                "modified",
                stay(21, 25),
                Some(at(24, 30)),
                EventRank::Updated,
                2,
            ),
            update(
                "cancelled",
                stay(21, 25),
                Some(at(25, 0)),
                EventRank::Updated,
                3,
            ),
        ]
    }

    #[test]
    fn created_updated_cancelled_in_order() {
        let steps = lifecycle();
        let created = decide(None, steps[0].clone()).unwrap();
        let Decision::Apply { record, change } = created else {
            panic!("expected apply")
        };
        assert_eq!(change, Some(ChangeKind::Created));
        assert_eq!(record.calendar_block().unwrap().stay, stay(21, 23));

        let Decision::Apply { record, change } = decide(Some(&record), steps[1].clone()).unwrap()
        else {
            panic!("expected apply")
        };
        assert_eq!(change, Some(ChangeKind::Updated));
        assert_eq!(record.stay, stay(21, 25));

        let Decision::Apply { record, change } = decide(Some(&record), steps[2].clone()).unwrap()
        else {
            panic!("expected apply")
        };
        assert_eq!(change, Some(ChangeKind::Cancelled));
        assert_eq!(record.calendar_block(), None);
    }

    #[test]
    fn a_late_created_never_resurrects_a_cancelled_booking() {
        let steps = lifecycle();
        let cancelled = fold(&[steps[2].clone()]).unwrap();
        assert_eq!(
            decide(Some(&cancelled), steps[0].clone()),
            Ok(Decision::Stale)
        );
    }

    #[test]
    fn a_replay_is_a_duplicate() {
        let steps = lifecycle();
        let state = fold(&steps[..1]).unwrap();
        assert_eq!(
            decide(Some(&state), steps[0].clone()),
            Ok(Decision::Duplicate)
        );
    }

    #[test]
    fn within_one_second_a_cancellation_wins() {
        let live = update(
            "modified",
            stay(1, 3),
            Some(at(1, 0)),
            EventRank::Updated,
            9,
        );
        let cancel = update(
            "cancelled",
            stay(1, 3),
            Some(at(1, 0)),
            EventRank::Updated,
            1,
        );
        for order in [
            [live.clone(), cancel.clone()],
            [cancel.clone(), live.clone()],
        ] {
            assert_eq!(fold(&order).unwrap().status, ReservationStatus::Cancelled);
        }
    }

    #[test]
    fn within_one_second_latest_activity_orders_before_any_digest() {
        // The later activity carries the smaller digest: the digest must not decide.
        let mut earlier = update(
            "modified",
            stay(1, 3),
            Some(at(1, 0)),
            EventRank::Updated,
            9,
        );
        earlier.version.latest_activity = Some(at(1, 0));
        let mut later = update(
            "modified",
            stay(1, 5),
            Some(at(1, 0)),
            EventRank::Updated,
            1,
        );
        later.version.latest_activity = Some(at(1, 1));
        for order in [
            [earlier.clone(), later.clone()],
            [later.clone(), earlier.clone()],
        ] {
            assert_eq!(fold(&order).unwrap().stay, stay(1, 5));
        }
    }

    #[test]
    fn an_api_read_wins_a_tie_over_a_webhook_payload() {
        let webhook = update(
            "modified",
            stay(1, 3),
            Some(at(1, 0)),
            EventRank::Updated,
            9,
        );
        let mut read = update(
            "modified",
            stay(1, 4),
            Some(at(1, 0)),
            EventRank::Updated,
            1,
        );
        read.version.origin = Origin::ApiRead;
        for order in [
            [webhook.clone(), read.clone()],
            [read.clone(), webhook.clone()],
        ] {
            assert_eq!(fold(&order).unwrap().stay, stay(1, 4));
        }
        // A newer webhook still wins over an older read.
        let mut newer = webhook.clone();
        newer.version.updated_at = Some(at(1, 1));
        assert_eq!(fold(&[read, newer]).unwrap().stay, stay(1, 3));
    }

    #[test]
    fn an_unstamped_payload_never_overwrites_a_stamped_state() {
        let stamped = update("new", stay(1, 3), Some(at(1, 0)), EventRank::Created, 1);
        let unstamped = update("modified", stay(1, 5), None, EventRank::Updated, 2);
        let state = fold(&[stamped]).unwrap();
        assert_eq!(decide(Some(&state), unstamped), Ok(Decision::Stale));
    }

    #[test]
    fn a_newer_payload_that_changes_nothing_visible_moves_the_version_silently() {
        let first = update("new", stay(1, 3), Some(at(1, 0)), EventRank::Created, 1);
        let mut same = first.clone();
        same.version.updated_at = Some(at(2, 0));
        same.version.event = EventRank::Updated;
        let state = fold(&[first]).unwrap();
        let Decision::Apply { record, change } = decide(Some(&state), same).unwrap() else {
            panic!("expected apply")
        };
        assert_eq!(change, None);
        assert_eq!(record.version.updated_at, Some(at(2, 0)));
    }

    #[test]
    fn a_partial_newer_payload_patches_only_what_it_names() {
        let full = update("new", stay(1, 3), Some(at(1, 0)), EventRank::Created, 1);
        let state = fold(&[full]).unwrap();
        let partial = ReservationUpdate {
            listing: None,
            status: Some(ReservationStatus::Modified),
            stay: None,
            guest: GuestPatch {
                name: Patch::Set("Test Guest".into()),
                ..GuestPatch::default()
            },
            total: Patch::Absent,
            channel_id: Patch::Absent,
            channel_name: Patch::Absent,
            channel_reservation_id: Patch::Absent,
            confirmation_code: Patch::Absent,
            cancelled_by: Patch::Absent,
            cancelled_at: Patch::Absent,
            version: Version {
                updated_at: Some(at(2, 0)),
                terminal: false,
                latest_activity: None,
                origin: Origin::Webhook,
                event: EventRank::Updated,
                digest: [7; 32],
            },
            ..state_update_keys(&state)
        };
        let Decision::Apply { record, .. } = decide(Some(&state), partial).unwrap() else {
            panic!("expected apply")
        };
        assert_eq!(record.status, ReservationStatus::Modified);
        assert_eq!(record.stay, state.stay);
        assert_eq!(record.total, state.total);
        assert_eq!(record.guest.name.as_deref(), Some("Test Guest"));
    }

    fn state_update_keys(state: &BookingRecord) -> ReservationUpdate {
        ReservationUpdate {
            account: state.account.clone(),
            reservation: state.reservation.clone(),
            listing: None,
            status: None,
            stay: None,
            guest: GuestPatch::default(),
            total: Patch::Absent,
            channel_id: Patch::Absent,
            channel_name: Patch::Absent,
            channel_reservation_id: Patch::Absent,
            confirmation_code: Patch::Absent,
            cancelled_by: Patch::Absent,
            cancelled_at: Patch::Absent,
            version: state.version.clone(),
        }
    }

    #[test]
    fn an_incomplete_payload_cannot_create() {
        let mut partial = update("new", stay(1, 3), Some(at(1, 0)), EventRank::Updated, 1);
        partial.stay = None;
        partial.listing = None;
        let err = decide(None, partial).unwrap_err();
        assert_eq!(err.missing, vec!["listing", "arrival and departure dates"]);
    }

    #[test]
    fn owner_stays_block_as_owner_and_inquiries_do_not_block() {
        let owner = fold(&[update(
            "ownerStay",
            stay(1, 3),
            Some(at(1, 0)),
            EventRank::Created,
            1,
        )])
        .unwrap();
        assert_eq!(owner.calendar_block().unwrap().kind, BlockKind::OwnerStay);
        let inquiry = fold(&[update(
            "inquiry",
            stay(1, 3),
            Some(at(1, 0)),
            EventRank::Created,
            1,
        )])
        .unwrap();
        assert_eq!(inquiry.calendar_block(), None);
    }

    fn arb_history() -> impl Strategy<Value = Vec<ReservationUpdate>> {
        // A history of distinct payloads: some share a second, some are unstamped.
        let statuses = prop::sample::select(vec![
            "new",
            "modified",
            "cancelled",
            "inquiry",
            "ownerStay",
            "awaitingPayment",
        ]);
        let step = (
            statuses,
            1u32..20,
            1u32..6,
            prop::option::weighted(0.9, 0u32..4),
            0u8..3,
            prop::option::of(0u32..3),
            any::<bool>(),
        );
        prop::collection::vec(step, 1..8).prop_map(|steps| {
            steps
                .into_iter()
                .enumerate()
                .map(|(i, (status, from, len, second, event, activity, read))| {
                    let event = match event {
                        0 => EventRank::Created,
                        1 => EventRank::Updated,
                        _ => EventRank::Cancelled,
                    };
                    let mut payload = update(
                        status,
                        stay(from, from + len),
                        second.map(|s| at(1, s)),
                        event,
                        u8::try_from(i).unwrap_or(u8::MAX),
                    );
                    payload.version.latest_activity = activity.map(|s| at(1, s));
                    payload.version.origin = if read {
                        Origin::ApiRead
                    } else {
                        Origin::Webhook
                    };
                    payload
                })
                .collect()
        })
    }

    /// A history plus one delivery of it: every payload at least once, some
    /// repeated, all in an order proptest picks.
    fn arb_delivery() -> impl Strategy<Value = (Vec<ReservationUpdate>, Vec<ReservationUpdate>)> {
        arb_history().prop_flat_map(|history| {
            let n = history.len();
            (Just(history), prop::collection::vec(0..n, 0..6)).prop_flat_map(|(history, dupes)| {
                let mut delivered = history.clone();
                delivered.extend(dupes.iter().map(|&i| history[i].clone()));
                (Just(history), Just(delivered).prop_shuffle())
            })
        })
    }

    proptest! {
        #[test]
        fn any_order_with_duplicates_ends_in_the_newest_version(
            (history, delivered) in arb_delivery(),
        ) {
            let mut in_order = history.clone();
            in_order.sort_by(|a, b| a.version.cmp(&b.version));
            prop_assert_eq!(fold(&delivered), fold(&in_order));
        }
    }
}
