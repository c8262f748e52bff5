//! Whatever a peer sends, mapping answers Ok or a MappingError: it never panics.
//! (A panic in the gateway drops the connection unanswered; in the ingestor it
//! would redeliver the message forever.)

use domain::AccountId;
use mapping::WebhookEvent;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const FIELDS: &[&str] = &[
    "id",
    "hostawayReservationId",
    "listingMapId",
    "listingId",
    "status",
    "arrivalDate",
    "checkIn",
    "departureDate",
    "checkOut",
    "isDatesUnspecified",
    "guestName",
    "guestFirstName",
    "guestLastName",
    "guestEmail",
    "phone",
    "guestPhone",
    "numberOfGuests",
    "adults",
    "children",
    "infants",
    "pets",
    "totalPrice",
    "currency",
    "channelId",
    "channelName",
    "reservationId",
    "confirmationCode",
    "cancelledBy",
    "cancellationDate",
    "updatedOn",
    "updatedAt",
    "conversationId",
    "body",
    "isIncoming",
    "date",
];

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,24}".prop_map(Value::from),
        "[0-9]{1,4}-[0-9]{1,2}-[0-9]{1,2}( [0-9:]{0,8})?".prop_map(Value::from),
        "-?[0-9]{0,12}(\\.[0-9]{0,6})?(e-?[0-9]{1,12})?".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_record() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((prop::sample::select(FIELDS), arb_value()), 0..20)
        .prop_map(|pairs| pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mapping_a_record_never_panics(record in arb_record(), event in 0usize..6) {
        let account = AccountId::parse("70001").unwrap();
        let event = WebhookEvent::ALL[event];
        let _ = mapping::map_reservation(&account, event, &record, None, domain::Origin::Webhook);
        let _ = mapping::map_message(&account, &record);
        let _ = mapping::map_listing_change(&record);
    }

    #[test]
    fn parsing_a_body_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = mapping::parse_webhook(&bytes);
    }

    #[test]
    fn parsing_an_envelope_never_panics(record in arb_record(), event in ".{0,30}", account in arb_value()) {
        let body = json!({"event": event, "accountId": account, "data": record, "timestamp": "2026-01-01T00:00:00Z"});
        let _ = mapping::parse_webhook(body.to_string().as_bytes());
    }
}
