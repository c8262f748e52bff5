//! TVL-side types of the Hostaway connector.
//!
//! Everything here is pure: no I/O, no clocks. Values are validated when they are
//! built, so a `StayDates`, `Money` or `AccountId` that exists is a valid one. The
//! rule that makes ingestion order-independent lives in [`booking::decide`].

pub mod booking;
pub mod ids;
pub mod message;
pub mod money;
pub mod patch;
pub mod status;
pub mod stay;
pub mod sync;
pub mod version;

pub use booking::{
    BlockKind, BookingRecord, CalendarBlock, ChangeKind, Decision, Guest, GuestPatch,
    IncompleteReservation, ReservationUpdate, decide,
};
pub use ids::{AccountId, BookingId, IdError, ListingId, ReservationId, UnitId};
pub use message::GuestMessage;
pub use money::{Currency, Money, MoneyError};
pub use patch::Patch;
pub use status::{CalendarEffect, ReservationStatus};
pub use stay::{StayDates, StayError};
pub use sync::{ChangeStamp, StampError, SyncKind};
pub use version::{EventRank, Origin, Version};

/// The `external_source` of every booking this connector creates.
pub const EXTERNAL_SOURCE: &str = "hostaway";
