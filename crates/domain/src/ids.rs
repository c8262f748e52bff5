//! Identifiers. Hostaway ids arrive as integers in real payloads, as strings in
//! captured ones and as `hostaway_res_456`-style strings in the specification, so
//! they are kept as validated text. TVL ids are UUIDs.

use std::fmt;

use uuid::Uuid;

/// Why an identifier was refused. The offending value is never echoed: it came
/// from a peer and may be anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {max} characters")]
    TooLong { kind: &'static str, max: usize },
    #[error("{kind} may only contain ASCII letters, digits, '-' and '_'")]
    BadCharacter { kind: &'static str },
}

/// Longest external id accepted. Hostaway ids are at most 20 digits.
pub const MAX_EXTERNAL_ID_LEN: usize = 64;

fn validate_external(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > MAX_EXTERNAL_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            max: MAX_EXTERNAL_ID_LEN,
        });
    }
    // Ids end up in NATS subjects, SQL parameters and log lines: a narrow alphabet
    // keeps wildcards, separators and control characters out of all three.
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(IdError::BadCharacter { kind });
    }
    Ok(())
}

macro_rules! external_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate_external($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

external_id!(
    /// A Hostaway account id (also the OAuth client id).
    AccountId,
    "account id"
);
external_id!(
    /// A Hostaway listing id (`listingMapId` on reservations).
    ListingId,
    "listing id"
);
external_id!(
    /// A Hostaway reservation id: the booking's `external_id`.
    ReservationId,
    "reservation id"
);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A TVL unit: the bookable thing a Hostaway listing is linked to.
    UnitId
);
uuid_id!(
    /// A TVL booking created by this connector.
    BookingId
);

impl BookingId {
    /// A new, time-ordered booking id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hostaway_and_specification_ids() {
        assert!(AccountId::parse("59808").is_ok());
        assert!(ReservationId::parse("hostaway_res_456").is_ok());
        assert!(ListingId::parse("hostaway-lst-789").is_ok());
    }

    #[test]
    fn refuses_ids_that_could_escape_a_subject_or_a_log_line() {
        for bad in ["", "a.b", "a*", ">", "a b", "a\nb", "é", &"9".repeat(65)] {
            assert!(AccountId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn errors_do_not_echo_the_value() {
        let err = AccountId::parse("secret password").unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
