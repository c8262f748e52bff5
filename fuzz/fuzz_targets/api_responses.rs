//! What Hostaway's API (or anything in its place) answers: the envelope,
//! token, error-text and record parsers of the client never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = mapping::api::error_text(body);
    let _ = mapping::api::parse_access_token(body);
    if let Ok(envelope) = mapping::api::parse_envelope(body) {
        let records = match &envelope.result {
            serde_json::Value::Array(items) => items.iter().collect::<Vec<_>>(),
            other => vec![other],
        };
        for record in records {
            if let serde_json::Value::Object(map) = record {
                let _ = mapping::api::parse_listing(map);
                let _ = mapping::api::parse_calendar_day(map);
                let _ = mapping::api::parse_unified_webhook(map);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = mapping::api::token::jwt_lifetime(text);
    }
});
