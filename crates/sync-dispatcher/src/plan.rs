//! From desired and known state to the fewest calendar ranges.
//!
//! A day is *dirty* when a value TVL wants differs from what the connector
//! knows Hostaway has (or does not know it). Consecutive days that want the
//! same values form a segment; each segment with a dirty day becomes one range
//! from its first dirty day to its last. Clean days inside that span are
//! rewritten with the value they already have: harmless, and it saves a range.
//! So the ranges are as few as the dirty days allow: no two can merge.

use chrono::NaiveDate;
use domain::Currency;
use mapping::api::CalendarInterval;
use serde_json::Value;
use store::desired::{CalendarDay, ListingField};
use store::remote::PushedRange;

/// One day to consider: the values wanted, and whether Hostaway lacks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDay<V> {
    pub day: NaiveDate,
    pub want: V,
    pub dirty: bool,
}

/// Days `[start, end]` to set to `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run<V> {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub values: V,
}

impl<V> Run<V> {
    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }
}

/// Consecutive days wanting the same values, and the span of its dirty days.
struct Segment<'a, V> {
    last: NaiveDate,
    values: &'a V,
    dirty: Option<(NaiveDate, NaiveDate)>,
}

impl<V: Clone> Segment<'_, V> {
    fn into_run(self) -> Option<Run<V>> {
        self.dirty.map(|(start, end)| Run {
            start,
            end,
            values: self.values.clone(),
        })
    }
}

/// The fewest runs covering every dirty day with its wanted values. `days`
/// must be in date order, one entry per date.
pub fn runs<V: PartialEq + Clone>(days: &[PlannedDay<V>]) -> Vec<Run<V>> {
    let mut out = Vec::new();
    let mut open: Option<Segment<'_, V>> = None;
    for day in days {
        let continues = open
            .as_ref()
            .is_some_and(|s| s.last.succ_opt() == Some(day.day) && *s.values == day.want);
        if !continues {
            out.extend(open.take().and_then(Segment::into_run));
            open = Some(Segment {
                last: day.day,
                values: &day.want,
                dirty: None,
            });
        }
        if let Some(segment) = open.as_mut() {
            segment.last = day.day;
            if day.dirty {
                segment.dirty = Some(match segment.dirty {
                    Some((start, _)) => (start, day.day),
                    None => (day.day, day.day),
                });
            }
        }
    }
    out.extend(open.and_then(Segment::into_run));
    out
}

/// What an availability push sets on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Availability {
    pub available: Option<bool>,
    pub min_stay: Option<i32>,
    pub max_stay: Option<i32>,
}

impl Availability {
    fn is_empty(&self) -> bool {
        self.available.is_none() && self.min_stay.is_none() && self.max_stay.is_none()
    }
}

fn differs<T: PartialEq>(want: Option<T>, have: Option<T>) -> bool {
    want.is_some() && want != have
}

/// What TVL wants of a day's availability. A night Hostaway shows reserved
/// keeps its availability (a guest holds it); its stay rules still follow TVL.
fn wanted_availability(d: &CalendarDay) -> Availability {
    Availability {
        available: d.desired_available.filter(|_| !d.reserved),
        min_stay: d.desired_min_stay,
        max_stay: d.desired_max_stay,
    }
}

fn availability_dirty(d: &CalendarDay, want: &Availability) -> bool {
    differs(want.available, d.remote_available)
        || differs(want.min_stay, d.remote_min_stay)
        || differs(want.max_stay, d.remote_max_stay)
}

/// The price TVL wants for a day, if it is wanted in the listing's currency.
fn wanted_price(d: &CalendarDay, listing_currency: Currency) -> Option<i64> {
    let foreign = d
        .desired_currency
        .as_deref()
        .is_some_and(|c| c.trim() != listing_currency.as_str());
    d.desired_price_minor.filter(|_| !foreign)
}

/// The availability days of a listing's calendar.
pub fn availability_days(calendar: &[CalendarDay]) -> Vec<PlannedDay<Availability>> {
    calendar
        .iter()
        .filter_map(|d| {
            let want = wanted_availability(d);
            (!want.is_empty()).then(|| PlannedDay {
                day: d.day,
                want,
                dirty: availability_dirty(d, &want),
            })
        })
        .collect()
}

/// Everything a calendar range can set at once: availability, stay rules and
/// the price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DayValues {
    pub availability: Availability,
    pub price_minor: Option<i64>,
}

/// The days of a listing's calendar with every kind wanted for them, for one
/// push of availability and prices together (a day is dirty when either
/// differs). Prices wanted in another currency than the listing's are left to
/// the pricing job, which reports them; without a currency (a lower bound, not
/// a push) every wanted price counts.
pub fn combined_days(
    calendar: &[CalendarDay],
    listing_currency: Option<Currency>,
) -> Vec<PlannedDay<DayValues>> {
    calendar
        .iter()
        .filter_map(|d| {
            let availability = wanted_availability(d);
            let price_minor = match listing_currency {
                Some(currency) => wanted_price(d, currency),
                None => d.desired_price_minor,
            };
            (!availability.is_empty() || price_minor.is_some()).then(|| PlannedDay {
                day: d.day,
                want: DayValues {
                    availability,
                    price_minor,
                },
                dirty: availability_dirty(d, &availability)
                    || differs(price_minor, d.remote_price_minor),
            })
        })
        .collect()
}

/// A price is wanted in a currency the listing does not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "prices of {days} day(s) from {first} are in {wanted}, but the listing's calendar is in {listing}; Hostaway does not convert"
)]
pub struct CurrencyMismatch {
    pub first: NaiveDate,
    pub days: usize,
    pub wanted: String,
    pub listing: Currency,
}

/// The pricing days of a listing's calendar, in minor units of the
/// listing's currency, and the days left out because their price is wanted
/// in another currency: one wrong price must not hold back the others.
pub fn pricing_days(
    calendar: &[CalendarDay],
    listing_currency: Currency,
) -> (Vec<PlannedDay<i64>>, Option<CurrencyMismatch>) {
    let (own, foreign): (Vec<CalendarDay>, Vec<CalendarDay>) = calendar
        .iter()
        .filter(|d| d.desired_price_minor.is_some())
        .cloned()
        .partition(|d| wanted_price(d, listing_currency).is_some());
    let mismatch = foreign.first().map(|first| CurrencyMismatch {
        first: first.day,
        days: foreign.len(),
        wanted: first.desired_currency.clone().unwrap_or_default(),
        listing: listing_currency,
    });
    (price_days(&own), mismatch)
}

/// The days with a wanted price, in whatever currency they are wanted.
pub fn price_days(calendar: &[CalendarDay]) -> Vec<PlannedDay<i64>> {
    calendar
        .iter()
        .filter_map(|d| {
            d.desired_price_minor.map(|price| PlannedDay {
                day: d.day,
                want: price,
                dirty: Some(price) != d.remote_price_minor,
            })
        })
        .collect()
}

/// The request bodies and the record of one availability run.
pub fn availability_interval(run: &Run<Availability>) -> (CalendarInterval, PushedRange) {
    let mut interval = CalendarInterval::new(run.start, run.end);
    interval.is_available = run.values.available;
    interval.minimum_stay = run.values.min_stay.map(i64::from);
    interval.maximum_stay = run.values.max_stay.map(i64::from);
    let pushed = PushedRange {
        start: run.start,
        end: run.end,
        available: run.values.available,
        min_stay: run.values.min_stay,
        max_stay: run.values.max_stay,
        price_minor: None,
    };
    (interval, pushed)
}

/// A multi-unit listing is opened and closed with `desiredUnitsToSell`
/// (every unit, or none), never `isAvailable`, which Hostaway ignores there.
pub fn sell_units(intervals: &mut [CalendarInterval], units: u32) {
    for interval in intervals {
        if let Some(available) = interval.is_available.take() {
            interval.desired_units_to_sell = Some(if available { i64::from(units) } else { 0 });
        }
    }
}

pub fn pricing_interval(run: &Run<i64>, currency: Currency) -> (CalendarInterval, PushedRange) {
    let interval = CalendarInterval::new(run.start, run.end)
        .with_price_minor(run.values, currency.minor_exponent());
    let pushed = PushedRange {
        start: run.start,
        end: run.end,
        available: None,
        min_stay: None,
        max_stay: None,
        price_minor: Some(run.values),
    };
    (interval, pushed)
}

/// One range of availability and price together.
pub fn combined_interval(
    run: &Run<DayValues>,
    currency: Currency,
) -> (CalendarInterval, PushedRange) {
    let (mut interval, mut pushed) = availability_interval(&Run {
        start: run.start,
        end: run.end,
        values: run.values.availability,
    });
    if let Some(price) = run.values.price_minor {
        interval = interval.with_price_minor(price, currency.minor_exponent());
        pushed.price_minor = Some(price);
    }
    (interval, pushed)
}

/// Minor units of a price Hostaway shows as a decimal in `currency`.
pub fn price_to_minor(price: &str, currency: Currency) -> Option<i64> {
    let value: f64 = price.trim().parse().ok()?;
    let scaled = (value * 10f64.powi(currency.minor_exponent() as i32)).round();
    (scaled.is_finite() && scaled >= 0.0 && scaled <= i64::MAX as f64).then_some(scaled as i64)
}

/// Listing fields whose Hostaway value differs from TVL's.
pub fn listing_drift(fields: &[ListingField]) -> Vec<(String, Value)> {
    fields
        .iter()
        .filter(|f| !f.remote.as_ref().is_some_and(|r| same_value(&f.desired, r)))
        .map(|f| (f.field.clone(), f.desired.clone()))
        .collect()
}

/// Equal as Hostaway means them: `4`, `4.0` and `"4"` are one number, and
/// `1`/`0` are booleans where the other side is one.
pub fn same_value(a: &Value, b: &Value) -> bool {
    fn number(v: &Value) -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        }
    }
    if a == b {
        return true;
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        _ => matches!((number(a), number(b)), (Some(x), Some(y)) if x == y),
    }
}

/// The lower bound of calls to push `runs` ranges: Hostaway takes 200 a call.
pub fn calls_for(ranges: usize) -> usize {
    ranges.div_ceil(hostaway_client::MAX_CALENDAR_INTERVALS)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn d(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 7, 1).unwrap() + chrono::Duration::days(i64::from(n))
    }

    fn day(n: u32, want: u8, dirty: bool) -> PlannedDay<u8> {
        PlannedDay {
            day: d(n),
            want,
            dirty,
        }
    }

    #[test]
    fn clean_days_between_dirty_ones_of_the_same_value_are_bridged() {
        let got = runs(&[
            day(0, 1, false),
            day(1, 1, true),
            day(2, 1, false),
            day(3, 1, true),
            day(4, 1, false),
            day(5, 2, true),
            day(7, 2, true),
        ]);
        assert_eq!(
            got,
            [
                Run {
                    start: d(1),
                    end: d(3),
                    values: 1
                },
                Run {
                    start: d(5),
                    end: d(5),
                    values: 2
                },
                Run {
                    start: d(7),
                    end: d(7),
                    values: 2
                },
            ],
            "a change of value or a gap in dates ends a run; clean edges are not pushed"
        );
        assert!(runs(&[day(0, 1, false), day(1, 1, false)]).is_empty());
    }

    fn calendar_day(n: u32) -> CalendarDay {
        CalendarDay {
            day: d(n),
            desired_available: None,
            desired_min_stay: None,
            desired_max_stay: None,
            desired_price_minor: None,
            desired_currency: None,
            remote_available: None,
            remote_min_stay: None,
            remote_max_stay: None,
            remote_price_minor: None,
            reserved: false,
        }
    }

    #[test]
    fn reserved_nights_keep_their_availability_but_follow_stay_rules() {
        let mut reserved = calendar_day(1);
        reserved.desired_available = Some(true);
        reserved.desired_min_stay = Some(3);
        reserved.remote_available = Some(false);
        reserved.remote_min_stay = Some(1);
        reserved.reserved = true;
        let days = availability_days(&[reserved]);
        assert_eq!(days.len(), 1);
        assert_eq!(
            days[0].want.available, None,
            "availability of a reserved night is Hostaway's"
        );
        assert!(days[0].dirty, "its minimum stay still differs");
    }

    #[test]
    fn prices_in_another_currency_are_refused_not_converted() {
        let usd = Currency::parse("USD").unwrap();
        let mut day = calendar_day(1);
        day.desired_price_minor = Some(10_000);
        day.desired_currency = Some("EUR".into());
        let mut next = calendar_day(2);
        next.desired_price_minor = Some(12_000);
        next.desired_currency = Some("USD".into());
        let (days, mismatch) = pricing_days(&[day.clone(), next.clone()], usd);
        let mismatch = mismatch.expect("the euro day is reported");
        assert_eq!((mismatch.days, mismatch.first), (1, day.day));
        assert_eq!(days.len(), 1, "the dollar day is still pushed");
        assert_eq!((days[0].day, days[0].want), (next.day, 12_000));
        day.desired_currency = Some("USD".into());
        day.remote_price_minor = Some(10_000);
        let (days, mismatch) = pricing_days(&[day], usd);
        assert!(mismatch.is_none());
        assert!(!days[0].dirty);
    }

    #[test]
    fn hostaway_prices_read_back_as_minor_units() {
        let usd = Currency::parse("USD").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(price_to_minor("99.99", usd), Some(9999));
        assert_eq!(price_to_minor("150", usd), Some(15000));
        assert_eq!(price_to_minor("12000", jpy), Some(12000));
        assert_eq!(price_to_minor("-1", usd), None);
        assert_eq!(price_to_minor("abc", usd), None);
    }

    #[test]
    fn listing_values_compare_as_hostaway_means_them() {
        assert!(same_value(&json!(4), &json!("4")));
        assert!(same_value(&json!(4), &json!(4.0)));
        assert!(same_value(&json!(1), &json!(true)));
        assert!(!same_value(&json!("Loft"), &json!("loft")));
        let fields = vec![
            ListingField {
                field: "name".into(),
                desired: json!("Loft"),
                remote: Some(json!("Loft")),
            },
            ListingField {
                field: "personCapacity".into(),
                desired: json!(4),
                remote: Some(json!("3")),
            },
            ListingField {
                field: "checkOutTime".into(),
                desired: json!(11),
                remote: None,
            },
        ];
        let drift: Vec<String> = listing_drift(&fields).into_iter().map(|(f, _)| f).collect();
        assert_eq!(drift, ["personCapacity", "checkOutTime"]);
    }

    #[test]
    fn calls_are_ranges_over_two_hundred() {
        assert_eq!(calls_for(0), 0);
        assert_eq!(calls_for(1), 1);
        assert_eq!(calls_for(200), 1);
        assert_eq!(calls_for(201), 2);
    }

    proptest! {
        /// One push of the combined runs leaves every day with both the
        /// availability and the price TVL wants, and never sets a day to a
        /// value that is not its own.
        #[test]
        fn combined_runs_bring_both_kinds_in_line(
            days in proptest::collection::vec(
                (any::<bool>(), any::<bool>(), 0i64..3, 0i64..3, any::<bool>()),
                0..60,
            )
        ) {
            let usd = Currency::parse("USD").unwrap();
            let calendar: Vec<CalendarDay> = days.iter().enumerate().map(
                |(n, (want_open, have_open, want_price, have_price, reserved))| CalendarDay {
                    desired_available: Some(*want_open),
                    remote_available: Some(*have_open),
                    desired_price_minor: Some(10_000 + want_price),
                    desired_currency: Some("USD".into()),
                    remote_price_minor: Some(10_000 + have_price),
                    reserved: *reserved,
                    ..calendar_day(n as u32)
                },
            ).collect();
            let ranges: Vec<PushedRange> = runs(&combined_days(&calendar, Some(usd)))
                .iter()
                .map(|run| combined_interval(run, usd).1)
                .collect();
            for day in &calendar {
                let covering: Vec<&PushedRange> =
                    ranges.iter().filter(|r| r.start <= day.day && day.day <= r.end).collect();
                prop_assert!(covering.len() <= 1, "ranges never overlap");
                let (available, price) = match covering.first() {
                    Some(r) => (r.available.or(day.remote_available), r.price_minor.or(day.remote_price_minor)),
                    None => (day.remote_available, day.remote_price_minor),
                };
                prop_assert_eq!(price, day.desired_price_minor, "the price TVL wants");
                if day.reserved {
                    prop_assert_eq!(available, day.remote_available, "a guest's night keeps its availability");
                } else {
                    prop_assert_eq!(available, day.desired_available, "the availability TVL wants");
                }
            }
        }

        /// Pushing the runs leaves every day Hostaway lacked with its wanted
        /// value, never writes a day a value other than its own, and uses no
        /// more ranges than there are maximal stretches of dirty days.
        #[test]
        fn runs_converge_with_no_more_ranges_than_dirty_stretches(
            days in proptest::collection::vec((0u8..3, any::<bool>(), 0u32..3), 0..80)
        ) {
            let mut n = 0u32;
            let planned: Vec<PlannedDay<u8>> = days.iter().map(|(want, dirty, gap)| {
                n += 1 + u32::from(*gap == 0);
                day(n, *want, *dirty)
            }).collect();
            let got = runs(&planned);
            for p in &planned {
                let covering: Vec<_> = got.iter().filter(|r| r.start <= p.day && p.day <= r.end).collect();
                prop_assert!(covering.len() <= 1, "ranges never overlap");
                if p.dirty {
                    prop_assert_eq!(covering.len(), 1, "every dirty day is pushed");
                }
                if let Some(run) = covering.first() {
                    prop_assert_eq!(run.values, p.want, "a day is only ever set to its own value");
                }
            }
            // Every range's span holds only known days (no invented dates).
            for run in &got {
                let mut date = run.start;
                while date <= run.end {
                    prop_assert!(planned.iter().any(|p| p.day == date));
                    date = date.succ_opt().unwrap();
                }
            }
            let stretches = planned.iter().enumerate().filter(|(i, p)| {
                p.dirty && (*i == 0 || {
                    let prev = &planned[i - 1];
                    !(prev.dirty && prev.want == p.want && prev.day.succ_opt() == Some(p.day))
                })
            }).count();
            prop_assert!(got.len() <= stretches);
        }
    }
}
