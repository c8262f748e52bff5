//! Any JSON object as a reservation or a message record: the mapping never
//! panics, and what it keeps is storable (text within its limits, without
//! NUL characters; stays within range).
#![no_main]

use domain::{AccountId, Origin, Patch};
use libfuzzer_sys::fuzz_target;
use mapping::WebhookEvent;

fn storable(text: &Patch<String>, max: usize) {
    if let Patch::Set(text) = text {
        assert!(text.chars().count() <= max, "text over its limit");
        assert!(!text.contains('\0'), "a NUL reached a stored field");
    }
}

fuzz_target!(|body: &[u8]| {
    let Ok(serde_json::Value::Object(data)) = serde_json::from_slice(body) else {
        return;
    };
    let account = AccountId::parse("59808").unwrap_or_else(|_| unreachable!());
    for event in WebhookEvent::ALL {
        for origin in [Origin::Webhook, Origin::ApiRead] {
            if let Ok(mapped) = mapping::map_reservation(&account, event, &data, None, origin) {
                let update = mapped.value;
                for text in [
                    &update.guest.name,
                    &update.guest.email,
                    &update.guest.phone,
                    &update.confirmation_code,
                    &update.channel_reservation_id,
                ] {
                    storable(text, mapping::json::MAX_TEXT_LEN);
                }
                if let Some(stay) = update.stay {
                    assert!((0..=domain::StayDates::MAX_NIGHTS).contains(&stay.nights()));
                }
                let _ = mapping::check_version_skew(&update, chrono::Utc::now().naive_utc());
            }
        }
    }
    if let Ok(message) = mapping::map_message(&account, &data) {
        assert!(message.value.body.chars().count() <= mapping::message::MAX_BODY_LEN);
        assert!(!message.value.body.contains('\0'));
    }
    let _ = mapping::map_listing_change(&data);
});
