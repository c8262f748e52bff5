//! A stay: arrival and departure dates. Hostaway's `arrivalDate`/`departureDate`
//! are plain dates in the listing's local time; the departure day is free for the
//! next guest, so a stay occupies the nights `[arrival, departure)`.

use chrono::{Datelike, NaiveDate};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StayError {
    #[error("departure is before arrival")]
    DepartureBeforeArrival,
    #[error("departure equals arrival")]
    ZeroNights,
    #[error("stay is longer than {max} nights")]
    TooLong { max: i64 },
    #[error("date is outside the years {min}..={max}")]
    OutOfRange { min: i32, max: i32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StayDates {
    arrival: NaiveDate,
    departure: NaiveDate,
}

impl StayDates {
    /// Three years: long mid-term lets are real (a 154-night stay is in the
    /// captured data), anything longer is an error upstream.
    pub const MAX_NIGHTS: i64 = 1096;
    pub const MIN_YEAR: i32 = 2000;
    pub const MAX_YEAR: i32 = 2100;

    pub fn new(arrival: NaiveDate, departure: NaiveDate) -> Result<Self, StayError> {
        Self::check_year(arrival)?;
        Self::check_year(departure)?;
        if departure < arrival {
            return Err(StayError::DepartureBeforeArrival);
        }
        if departure == arrival {
            return Err(StayError::ZeroNights);
        }
        let stay = Self { arrival, departure };
        if stay.nights() > Self::MAX_NIGHTS {
            return Err(StayError::TooLong {
                max: Self::MAX_NIGHTS,
            });
        }
        Ok(stay)
    }

    /// A stay of no nights: Hostaway's placeholder for an inquiry that named
    /// no dates (`isDatesUnspecified: 1`, `nights: 0`, arrival = departure), or
    /// a dated record whose departure is its arrival. It holds no block.
    pub fn zero_nights(day: NaiveDate) -> Result<Self, StayError> {
        Self::check_year(day)?;
        Ok(Self {
            arrival: day,
            departure: day,
        })
    }

    fn check_year(date: NaiveDate) -> Result<(), StayError> {
        if (Self::MIN_YEAR..=Self::MAX_YEAR).contains(&date.year()) {
            Ok(())
        } else {
            Err(StayError::OutOfRange {
                min: Self::MIN_YEAR,
                max: Self::MAX_YEAR,
            })
        }
    }

    pub fn arrival(&self) -> NaiveDate {
        self.arrival
    }

    pub fn departure(&self) -> NaiveDate {
        self.departure
    }

    pub fn nights(&self) -> i64 {
        (self.departure - self.arrival).num_days()
    }

    /// The nights both stays occupy, if any.
    pub fn overlap(&self, other: &StayDates) -> Option<StayDates> {
        let start = self.arrival.max(other.arrival);
        let end = self.departure.min(other.departure);
        (start < end).then_some(StayDates {
            arrival: start,
            departure: end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_stay_has_nights_between_arrival_and_departure() {
        let stay = StayDates::new(d("2025-11-21"), d("2025-11-23")).unwrap();
        assert_eq!(stay.nights(), 2);
    }

    #[test]
    fn refuses_departure_before_arrival_and_empty_stays() {
        assert_eq!(
            StayDates::new(d("2025-11-23"), d("2025-11-21")),
            Err(StayError::DepartureBeforeArrival)
        );
        assert_eq!(
            StayDates::new(d("2025-11-23"), d("2025-11-23")),
            Err(StayError::ZeroNights)
        );
    }

    #[test]
    fn refuses_absurd_stays() {
        assert!(matches!(
            StayDates::new(d("2025-01-01"), d("2030-01-01")),
            Err(StayError::TooLong { .. })
        ));
        assert!(matches!(
            StayDates::new(d("1900-01-01"), d("1900-01-02")),
            Err(StayError::OutOfRange { .. })
        ));
    }

    #[test]
    fn back_to_back_stays_do_not_overlap() {
        let a = StayDates::new(d("2025-11-21"), d("2025-11-23")).unwrap();
        let b = StayDates::new(d("2025-11-23"), d("2025-11-25")).unwrap();
        assert_eq!(a.overlap(&b), None);
        let c = StayDates::new(d("2025-11-22"), d("2025-11-24")).unwrap();
        assert_eq!(
            a.overlap(&c),
            Some(StayDates::new(d("2025-11-22"), d("2025-11-23")).unwrap())
        );
    }
}
