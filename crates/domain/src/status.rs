//! Hostaway reservation statuses and what each does to the calendar.

/// The statuses Hostaway documents, plus the specification's `confirmed`
/// (read as `new`) and whatever Hostaway adds later (`Other`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReservationStatus {
    New,
    Modified,
    Cancelled,
    Inquiry,
    InquiryPreapproved,
    InquiryDenied,
    InquiryTimedout,
    InquiryNotPossible,
    Pending,
    AwaitingPayment,
    AwaitingGuestVerification,
    Declined,
    Expired,
    OwnerStay,
    Unconfirmed,
    Unknown,
    /// A status this version does not know. It does not block the calendar and
    /// is reported, so an operator learns about it.
    Other(String),
}

/// What a reservation in a status does to its unit's calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalendarEffect {
    /// A guest stay: the nights are sold.
    GuestBlock,
    /// The owner uses the unit: the nights are not for sale.
    OwnerBlock,
    /// Nothing is held.
    Free,
}

const KNOWN: &[(&str, ReservationStatus)] = &[
    ("new", ReservationStatus::New),
    ("modified", ReservationStatus::Modified),
    ("cancelled", ReservationStatus::Cancelled),
    ("inquiry", ReservationStatus::Inquiry),
    ("inquiryPreapproved", ReservationStatus::InquiryPreapproved),
    ("inquiryDenied", ReservationStatus::InquiryDenied),
    ("inquiryTimedout", ReservationStatus::InquiryTimedout),
    ("inquiryNotPossible", ReservationStatus::InquiryNotPossible),
    ("pending", ReservationStatus::Pending),
    ("awaitingPayment", ReservationStatus::AwaitingPayment),
    (
        "awaitingGuestVerification",
        ReservationStatus::AwaitingGuestVerification,
    ),
    ("declined", ReservationStatus::Declined),
    ("expired", ReservationStatus::Expired),
    ("ownerStay", ReservationStatus::OwnerStay),
    ("unconfirmed", ReservationStatus::Unconfirmed),
    ("unknown", ReservationStatus::Unknown),
];

impl ReservationStatus {
    /// Reads a status. Known names match case-insensitively; `confirmed` (the
    /// specification's name for Hostaway's new/modified) reads as `New`; `canceled`
    /// (one l) as `Cancelled`.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        if let Some((_, status)) = KNOWN.iter().find(|(name, _)| *name == text) {
            return status.clone();
        }
        if let Some((_, status)) = KNOWN
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
        {
            return status.clone();
        }
        if text.eq_ignore_ascii_case("confirmed") {
            return Self::New;
        }
        if text.eq_ignore_ascii_case("canceled") {
            return Self::Cancelled;
        }
        Self::Other(text.to_owned())
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(text) => text,
            known => KNOWN
                .iter()
                .find(|(_, status)| status == known)
                .map_or("unknown", |(name, _)| name),
        }
    }

    /// Per the API reference: new, modified, awaitingPayment and
    /// awaitingGuestVerification hold the nights; ownerStay is an owner block;
    /// everything else (cancelled, declined, expired, inquiries, and the tentative
    /// pending/unconfirmed, which Hostaway itself does not count as confirmed)
    /// holds nothing.
    pub fn calendar_effect(&self) -> CalendarEffect {
        match self {
            Self::New
            | Self::Modified
            | Self::AwaitingPayment
            | Self::AwaitingGuestVerification => CalendarEffect::GuestBlock,
            Self::OwnerStay => CalendarEffect::OwnerBlock,
            _ => CalendarEffect::Free,
        }
    }

    /// A status a reservation does not come back from in the normal course:
    /// the booking is over before it began.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Cancelled
                | Self::Declined
                | Self::Expired
                | Self::InquiryDenied
                | Self::InquiryTimedout
                | Self::InquiryNotPossible
        )
    }

    pub fn is_known(&self) -> bool {
        !matches!(self, Self::Other(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_status_round_trips() {
        for (name, status) in KNOWN {
            assert_eq!(&ReservationStatus::parse(name), status);
            assert_eq!(status.as_str(), *name);
        }
    }

    #[test]
    fn blocking_follows_the_api_reference() {
        use CalendarEffect::*;
        let cases = [
            ("new", GuestBlock),
            ("modified", GuestBlock),
            ("awaitingPayment", GuestBlock),
            ("awaitingGuestVerification", GuestBlock),
            ("ownerStay", OwnerBlock),
            ("cancelled", Free),
            ("declined", Free),
            ("expired", Free),
            ("inquiry", Free),
            ("inquiryPreapproved", Free),
            ("inquiryDenied", Free),
            ("inquiryTimedout", Free),
            ("inquiryNotPossible", Free),
            ("pending", Free),
        ];
        for (name, effect) in cases {
            assert_eq!(
                ReservationStatus::parse(name).calendar_effect(),
                effect,
                "{name}"
            );
        }
    }

    #[test]
    fn specification_and_spelling_variants() {
        assert_eq!(
            ReservationStatus::parse("confirmed"),
            ReservationStatus::New
        );
        assert_eq!(
            ReservationStatus::parse("CANCELLED"),
            ReservationStatus::Cancelled
        );
        assert_eq!(
            ReservationStatus::parse("canceled"),
            ReservationStatus::Cancelled
        );
        let other = ReservationStatus::parse("somethingNew");
        assert_eq!(other.as_str(), "somethingNew");
        assert!(!other.is_known());
        assert_eq!(other.calendar_effect(), CalendarEffect::Free);
    }
}
