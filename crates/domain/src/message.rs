//! A guest message relayed by Hostaway (`message.received`).

use chrono::NaiveDateTime;

use crate::{AccountId, ListingId, ReservationId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestMessage {
    pub account: AccountId,
    pub message_id: String,
    pub conversation_id: Option<String>,
    pub reservation: Option<ReservationId>,
    pub listing: Option<ListingId>,
    pub channel_id: Option<i64>,
    pub body: String,
    pub is_incoming: bool,
    pub sent_at: Option<NaiveDateTime>,
}
