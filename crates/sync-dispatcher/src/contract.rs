//! The contract with the TVL services that publish changes
//! (`proto/hostaway/connector/v1/outbound.proto`): decoding and validating a
//! message into the change the projection applies. A message that breaks the
//! contract gets a [`ContractError`] naming the field, and changes nothing.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::{ChangeStamp, Currency, SyncKind, UnitId};
use events::Message as _;
use events::pb;
use serde_json::{Value, json};
use store::desired::{AvailabilityChange, ListingChange, PriceChange};

/// Longest change id accepted.
pub const MAX_CHANGE_ID_LEN: usize = 128;
/// Longest range one change may cover, and how far ahead it may reach.
pub const MAX_RANGE_DAYS: i64 = 1096;
/// A change stamped further ahead than this would win over every real change
/// made until then (newest wins per field): one publisher with a fast clock
/// could pin a calendar. Refused, naming the header field.
pub const MAX_CLOCK_SKEW: Duration = Duration::seconds(5);
pub const MAX_STAY_NIGHTS: u32 = 1125;
pub const MAX_MIN_STAY_NIGHTS: u32 = 365;
/// 10 million in major units of a two-decimal currency.
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ContractError {
    pub field: &'static str,
    pub problem: String,
}

fn refuse(field: &'static str, problem: impl Into<String>) -> ContractError {
    ContractError {
        field,
        problem: problem.into(),
    }
}

fn not_protobuf(error: impl std::fmt::Display) -> ContractError {
    refuse("payload", format!("not protobuf: {error}"))
}

/// A validated change.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Availability(AvailabilityChange),
    Price(PriceChange),
    Listing(ListingChange),
}

impl Change {
    pub fn kind(&self) -> SyncKind {
        match self {
            Change::Availability(_) => SyncKind::Availability,
            Change::Price(_) => SyncKind::Pricing,
            Change::Listing(_) => SyncKind::Listing,
        }
    }

    pub fn unit(&self) -> UnitId {
        match self {
            Change::Availability(c) => c.unit,
            Change::Price(c) => c.unit,
            Change::Listing(c) => c.unit,
        }
    }
}

/// A change with what identifies it in logs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedChange {
    pub change_id: String,
    pub source: String,
    pub change: Change,
}

/// The kind and unit a change subject names (`{ns}.changes.{kind}.{unit}`).
pub fn parse_subject(namespace: &str, subject: &str) -> Result<(SyncKind, UnitId), ContractError> {
    let rest = subject
        .strip_prefix(namespace)
        .and_then(|s| s.strip_prefix(".changes."))
        .ok_or_else(|| refuse("subject", "not a changes subject"))?;
    let (kind, unit) = rest
        .split_once('.')
        .ok_or_else(|| refuse("subject", "expected changes.{kind}.{unit_id}"))?;
    let kind = SyncKind::parse(kind)
        .filter(SyncKind::is_outbound)
        .ok_or_else(|| refuse("subject", "kind must be availability, pricing or listing"))?;
    let unit = unit
        .parse::<UnitId>()
        .map_err(|_| refuse("subject", "unit id is not a UUID"))?;
    Ok((kind, unit))
}

/// Decodes and validates a change published on `subject`.
pub fn decode(
    namespace: &str,
    subject: &str,
    payload: &[u8],
    now: DateTime<Utc>,
) -> Result<ReceivedChange, ContractError> {
    let (kind, subject_unit) = parse_subject(namespace, subject)?;
    let (header, change) = match kind {
        SyncKind::Availability => {
            let m = pb::AvailabilityChange::decode(payload).map_err(not_protobuf)?;
            let header = Header::check(m.header.as_ref(), subject_unit, now)?;
            let (start, end) = range(m.dates.as_ref(), now)?;
            (header.clone(), availability(&m, header, start, end)?)
        }
        SyncKind::Pricing => {
            let m = pb::PriceChange::decode(payload).map_err(not_protobuf)?;
            let header = Header::check(m.header.as_ref(), subject_unit, now)?;
            let (start, end) = range(m.dates.as_ref(), now)?;
            (header.clone(), price(&m, header, start, end)?)
        }
        SyncKind::Listing => {
            let m = pb::ListingDetailsChange::decode(payload).map_err(not_protobuf)?;
            let header = Header::check(m.header.as_ref(), subject_unit, now)?;
            (header.clone(), listing(&m, header)?)
        }
        SyncKind::Reservations => return Err(refuse("subject", "not a change kind")),
    };
    Ok(ReceivedChange {
        change_id: header.change_id,
        source: header.source,
        change,
    })
}

#[derive(Debug, Clone)]
struct Header {
    change_id: String,
    source: String,
    unit: UnitId,
    stamp: ChangeStamp,
}

impl Header {
    fn check(
        header: Option<&pb::ChangeHeader>,
        subject_unit: UnitId,
        now: DateTime<Utc>,
    ) -> Result<Self, ContractError> {
        let header = header.ok_or_else(|| refuse("header", "missing"))?;
        let id = &header.change_id;
        if id.is_empty() || id.len() > MAX_CHANGE_ID_LEN {
            return Err(refuse(
                "header.change_id",
                format!("must be 1-{MAX_CHANGE_ID_LEN} characters"),
            ));
        }
        if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(refuse(
                "header.change_id",
                "must not hold whitespace or control characters",
            ));
        }
        let unit = header
            .unit_id
            .parse::<UnitId>()
            .map_err(|_| refuse("header.unit_id", "not a UUID"))?;
        if unit != subject_unit {
            return Err(refuse(
                "header.unit_id",
                "differs from the unit of the subject",
            ));
        }
        let occurred_at = header
            .occurred_at
            .as_ref()
            .ok_or_else(|| refuse("header.occurred_at", "missing (it orders changes)"))?;
        let occurred_at = events::from_timestamp(occurred_at)
            .ok_or_else(|| refuse("header.occurred_at", "not a valid timestamp"))?;
        if occurred_at > now + MAX_CLOCK_SKEW {
            return Err(refuse(
                "header.occurred_at",
                "more than 5 seconds ahead of the connector's clock (check the publisher's clock)",
            ));
        }
        let stamp = ChangeStamp::new(occurred_at, header.version, id)
            .map_err(|e| refuse("header", e.to_string()))?;
        let source: String = header
            .source
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect();
        Ok(Self {
            change_id: id.clone(),
            source,
            unit,
            stamp,
        })
    }
}

fn range(
    dates: Option<&pb::DateRange>,
    now: DateTime<Utc>,
) -> Result<(NaiveDate, NaiveDate), ContractError> {
    let dates = dates.ok_or_else(|| refuse("dates", "missing"))?;
    let start = dates
        .start
        .as_ref()
        .and_then(events::naive_date)
        .ok_or_else(|| refuse("dates.start", "missing or not a date"))?;
    let end = dates
        .end
        .as_ref()
        .and_then(events::naive_date)
        .ok_or_else(|| refuse("dates.end", "missing or not a date"))?;
    if end < start {
        return Err(refuse("dates", "end is before start"));
    }
    if (end - start).num_days() >= MAX_RANGE_DAYS {
        return Err(refuse(
            "dates",
            format!("covers more than {MAX_RANGE_DAYS} days"),
        ));
    }
    if (end - now.date_naive()).num_days() > MAX_RANGE_DAYS {
        return Err(refuse(
            "dates.end",
            format!("more than {MAX_RANGE_DAYS} days ahead"),
        ));
    }
    Ok((start, end))
}

fn nights(field: &'static str, value: Option<u32>, max: u32) -> Result<Option<i32>, ContractError> {
    match value {
        None => Ok(None),
        Some(n) if (1..=max).contains(&n) => Ok(Some(n as i32)),
        Some(_) => Err(refuse(field, format!("must be 1-{max} nights"))),
    }
}

fn availability(
    m: &pb::AvailabilityChange,
    header: Header,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Change, ContractError> {
    let min_stay = nights("min_stay", m.min_stay, MAX_MIN_STAY_NIGHTS)?;
    let max_stay = nights("max_stay", m.max_stay, MAX_STAY_NIGHTS)?;
    if m.available.is_none() && min_stay.is_none() && max_stay.is_none() {
        return Err(refuse(
            "available",
            "a change must set available, min_stay or max_stay",
        ));
    }
    if let (Some(min), Some(max)) = (min_stay, max_stay)
        && min > max
    {
        return Err(refuse("min_stay", "greater than max_stay"));
    }
    Ok(Change::Availability(AvailabilityChange {
        unit: header.unit,
        start,
        end,
        available: m.available,
        min_stay,
        max_stay,
        stamp: header.stamp,
    }))
}

fn price(
    m: &pb::PriceChange,
    header: Header,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Change, ContractError> {
    let money = m
        .nightly_price
        .as_ref()
        .ok_or_else(|| refuse("nightly_price", "missing"))?;
    if !(0..=MAX_PRICE_MINOR).contains(&money.minor_units) {
        return Err(refuse(
            "nightly_price.minor_units",
            format!("must be 0-{MAX_PRICE_MINOR}"),
        ));
    }
    let currency = Currency::parse(&money.currency)
        .map_err(|_| refuse("nightly_price.currency", "not an ISO 4217 code"))?;
    Ok(Change::Price(PriceChange {
        unit: header.unit,
        start,
        end,
        price_minor: money.minor_units,
        currency,
        stamp: header.stamp,
    }))
}

/// The listing fields of the contract, by their Hostaway names.
pub const LISTING_FIELDS: &[&str] = &[
    "name",
    "description",
    "houseRules",
    "personCapacity",
    "bedroomsNumber",
    "bedsNumber",
    "bathroomsNumber",
    "minNights",
    "maxNights",
    "checkInTimeStart",
    "checkInTimeEnd",
    "checkOutTime",
    "instantBookable",
];

fn listing(m: &pb::ListingDetailsChange, header: Header) -> Result<Change, ContractError> {
    let mut fields: Vec<(String, Value)> = Vec::new();
    let mut text = |field: &'static str,
                    hostaway: &str,
                    value: &Option<String>,
                    max: usize,
                    blank_ok: bool|
     -> Result<(), ContractError> {
        if let Some(value) = value {
            if value.chars().count() > max {
                return Err(refuse(field, format!("longer than {max} characters")));
            }
            if !blank_ok && value.trim().is_empty() {
                return Err(refuse(field, "must not be blank"));
            }
            if value.contains('\0') {
                return Err(refuse(field, "must not hold NUL characters"));
            }
            fields.push((hostaway.to_owned(), json!(value)));
        }
        Ok(())
    };
    text("name", "name", &m.name, 255, false)?;
    text("description", "description", &m.description, 20_000, true)?;
    text("house_rules", "houseRules", &m.house_rules, 20_000, true)?;
    let counts: [(&'static str, &str, Option<u32>, u32, u32); 9] = [
        (
            "person_capacity",
            "personCapacity",
            m.person_capacity,
            1,
            100,
        ),
        ("bedrooms", "bedroomsNumber", m.bedrooms, 0, 100),
        ("beds", "bedsNumber", m.beds, 0, 200),
        ("bathrooms", "bathroomsNumber", m.bathrooms, 0, 100),
        (
            "min_nights",
            "minNights",
            m.min_nights,
            1,
            MAX_MIN_STAY_NIGHTS,
        ),
        ("max_nights", "maxNights", m.max_nights, 1, MAX_STAY_NIGHTS),
        (
            "check_in_hour_start",
            "checkInTimeStart",
            m.check_in_hour_start,
            0,
            23,
        ),
        (
            "check_in_hour_end",
            "checkInTimeEnd",
            m.check_in_hour_end,
            0,
            23,
        ),
        ("check_out_hour", "checkOutTime", m.check_out_hour, 0, 23),
    ];
    for (field, hostaway, value, min, max) in counts {
        if let Some(value) = value {
            if !(min..=max).contains(&value) {
                return Err(refuse(field, format!("must be {min}-{max}")));
            }
            fields.push((hostaway.to_owned(), json!(value)));
        }
    }
    if let (Some(min), Some(max)) = (m.min_nights, m.max_nights)
        && min > max
    {
        return Err(refuse("min_nights", "greater than max_nights"));
    }
    if let Some(instant) = m.instant_bookable {
        fields.push(("instantBookable".into(), json!(u8::from(instant))));
    }
    if fields.is_empty() {
        return Err(refuse(
            "fields",
            "a listing change must set at least one field",
        ));
    }
    Ok(Change::Listing(ListingChange {
        unit: header.unit,
        fields,
        stamp: header.stamp,
    }))
}

/// The header of a change published now by `source` (a fresh UUIDv7 id).
pub fn new_header(unit: UnitId, source: &str) -> pb::ChangeHeader {
    header(
        &uuid::Uuid::now_v7().to_string(),
        unit,
        Utc::now(),
        0,
        source,
    )
}

pub fn header(
    change_id: &str,
    unit: UnitId,
    occurred_at: DateTime<Utc>,
    version: u64,
    source: &str,
) -> pb::ChangeHeader {
    pb::ChangeHeader {
        change_id: change_id.to_owned(),
        unit_id: unit.to_string(),
        occurred_at: Some(events::timestamp(occurred_at)),
        version,
        source: source.to_owned(),
    }
}

pub fn dates(start: NaiveDate, end: NaiveDate) -> Option<pb::DateRange> {
    Some(pb::DateRange {
        start: Some(events::date(start)),
        end: Some(events::date(end)),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const UNIT: &str = "0190f5a0-0000-7000-8000-00000000a001";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).single().unwrap()
    }

    fn header() -> pb::ChangeHeader {
        pb::ChangeHeader {
            change_id: "c-1".into(),
            unit_id: UNIT.into(),
            occurred_at: Some(events::timestamp(now())),
            version: 0,
            source: "tvl-calendar".into(),
        }
    }

    fn dates(start: (i32, i32, i32), end: (i32, i32, i32)) -> Option<pb::DateRange> {
        let d = |(year, month, day)| pb::Date { year, month, day };
        Some(pb::DateRange {
            start: Some(d(start)),
            end: Some(d(end)),
        })
    }

    fn availability_change(edit: impl FnOnce(&mut pb::AvailabilityChange)) -> Vec<u8> {
        let mut m = pb::AvailabilityChange {
            header: Some(header()),
            dates: dates((2026, 7, 1), (2026, 7, 10)),
            available: Some(false),
            min_stay: Some(2),
            max_stay: None,
        };
        edit(&mut m);
        m.encode_to_vec()
    }

    fn subject(kind: &str) -> String {
        format!("ns.changes.{kind}.{UNIT}")
    }

    #[test]
    fn a_change_from_a_fast_clock_is_refused_but_a_few_seconds_are_tolerated() {
        let at = |ahead: i64| {
            availability_change(|m| {
                m.header.as_mut().unwrap().occurred_at =
                    Some(events::timestamp(now() + Duration::seconds(ahead)))
            })
        };
        assert!(decode("ns", &subject("availability"), &at(4), now()).is_ok());
        let refused = decode("ns", &subject("availability"), &at(6), now()).unwrap_err();
        assert_eq!(refused.field, "header.occurred_at");
        assert!(refused.to_string().contains("5 seconds"), "{refused}");
    }

    #[test]
    fn a_valid_availability_change_decodes() {
        let got = decode(
            "ns",
            &subject("availability"),
            &availability_change(|_| {}),
            now(),
        )
        .unwrap();
        let Change::Availability(change) = got.change else {
            panic!("availability expected");
        };
        assert_eq!(change.available, Some(false));
        assert_eq!(change.min_stay, Some(2));
        assert_eq!((change.end - change.start).num_days(), 9);
        assert_eq!(got.change_id, "c-1");
    }

    #[test]
    fn broken_availability_changes_name_the_field() {
        type Edit = Box<dyn Fn(&mut pb::AvailabilityChange)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("header", Box::new(|m| m.header = None)),
            (
                "header.change_id",
                Box::new(|m| m.header.as_mut().unwrap().change_id.clear()),
            ),
            (
                "header.change_id",
                Box::new(|m| m.header.as_mut().unwrap().change_id = "a b".into()),
            ),
            (
                "header.change_id",
                Box::new(|m| m.header.as_mut().unwrap().change_id = "x".repeat(129)),
            ),
            (
                "header.unit_id",
                Box::new(|m| m.header.as_mut().unwrap().unit_id = "not-a-uuid".into()),
            ),
            (
                "header.unit_id",
                Box::new(|m| {
                    m.header.as_mut().unwrap().unit_id =
                        "0190f5a0-0000-7000-8000-00000000ffff".into()
                }),
            ),
            (
                "header.occurred_at",
                Box::new(|m| m.header.as_mut().unwrap().occurred_at = None),
            ),
            (
                "header.occurred_at",
                Box::new(|m| {
                    m.header.as_mut().unwrap().occurred_at =
                        Some(events::timestamp(now() + Duration::seconds(10)))
                }),
            ),
            (
                "header",
                Box::new(|m| {
                    m.header.as_mut().unwrap().occurred_at = Some(prost_types::Timestamp {
                        seconds: -5,
                        nanos: 0,
                    })
                }),
            ),
            ("dates", Box::new(|m| m.dates = None)),
            (
                "dates.start",
                Box::new(|m| m.dates = dates((2026, 2, 30), (2026, 3, 1))),
            ),
            (
                "dates",
                Box::new(|m| m.dates = dates((2026, 7, 10), (2026, 7, 1))),
            ),
            (
                "dates",
                Box::new(|m| m.dates = dates((2026, 7, 1), (2029, 7, 10))),
            ),
            (
                "dates.end",
                Box::new(|m| m.dates = dates((2029, 6, 1), (2029, 6, 10))),
            ),
            (
                "available",
                Box::new(|m| {
                    m.available = None;
                    m.min_stay = None;
                }),
            ),
            ("min_stay", Box::new(|m| m.min_stay = Some(0))),
            ("max_stay", Box::new(|m| m.max_stay = Some(5000))),
            (
                "min_stay",
                Box::new(|m| {
                    m.min_stay = Some(7);
                    m.max_stay = Some(3);
                }),
            ),
        ];
        for (field, edit) in cases {
            let error = decode(
                "ns",
                &subject("availability"),
                &availability_change(|m| edit(m)),
                now(),
            )
            .expect_err(field);
            assert_eq!(error.field, field, "{error}");
        }
    }

    #[test]
    fn subjects_and_payloads_that_are_not_changes_are_refused() {
        let body = availability_change(|_| {});
        for bad in [
            "other.changes.availability.x",
            "ns.changes.availability",
            &format!("ns.changes.reservations.{UNIT}"),
            &format!("ns.changes.calendar.{UNIT}"),
            "ns.changes.availability.not-a-uuid",
        ] {
            assert_eq!(
                decode("ns", bad, &body, now()).unwrap_err().field,
                "subject",
                "{bad}"
            );
        }
        let error = decode("ns", &subject("availability"), &[0xff, 0xff, 0xff], now()).unwrap_err();
        assert_eq!(error.field, "payload");
    }

    #[test]
    fn prices_need_a_known_currency_and_a_sane_amount() {
        let change = |minor_units, currency: &str| {
            pb::PriceChange {
                header: Some(header()),
                dates: dates((2026, 7, 1), (2026, 7, 3)),
                nightly_price: Some(pb::Money {
                    minor_units,
                    currency: currency.into(),
                }),
            }
            .encode_to_vec()
        };
        let ok = decode("ns", &subject("pricing"), &change(12_500, "EUR"), now()).unwrap();
        assert!(matches!(ok.change, Change::Price(ref p) if p.price_minor == 12_500));
        for (minor, currency, field) in [
            (-1, "EUR", "nightly_price.minor_units"),
            (MAX_PRICE_MINOR + 1, "EUR", "nightly_price.minor_units"),
            (100, "euro", "nightly_price.currency"),
        ] {
            let error =
                decode("ns", &subject("pricing"), &change(minor, currency), now()).unwrap_err();
            assert_eq!(error.field, field);
        }
    }

    #[test]
    fn listing_changes_map_to_hostaway_names() {
        let m = pb::ListingDetailsChange {
            header: Some(header()),
            name: Some("Sea view loft".into()),
            person_capacity: Some(4),
            bedrooms: Some(2),
            check_out_hour: Some(11),
            instant_bookable: Some(true),
            ..Default::default()
        };
        let got = decode("ns", &subject("listing"), &m.encode_to_vec(), now()).unwrap();
        let Change::Listing(change) = got.change else {
            panic!("listing expected");
        };
        let names: Vec<&str> = change.fields.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "name",
                "personCapacity",
                "bedroomsNumber",
                "checkOutTime",
                "instantBookable"
            ]
        );
        assert!(names.iter().all(|n| LISTING_FIELDS.contains(n)));
        assert_eq!(change.fields[4].1, json!(1));

        for (edit, field) in [
            (
                pb::ListingDetailsChange {
                    name: Some("  ".into()),
                    ..Default::default()
                },
                "name",
            ),
            (
                pb::ListingDetailsChange {
                    person_capacity: Some(0),
                    ..Default::default()
                },
                "person_capacity",
            ),
            (
                pb::ListingDetailsChange {
                    check_out_hour: Some(24),
                    ..Default::default()
                },
                "check_out_hour",
            ),
            (
                pb::ListingDetailsChange {
                    min_nights: Some(5),
                    max_nights: Some(2),
                    ..Default::default()
                },
                "min_nights",
            ),
            (pb::ListingDetailsChange::default(), "fields"),
        ] {
            let m = pb::ListingDetailsChange {
                header: Some(header()),
                ..edit
            };
            let error = decode("ns", &subject("listing"), &m.encode_to_vec(), now()).unwrap_err();
            assert_eq!(error.field, field);
        }
    }
}
