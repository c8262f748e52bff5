//! Every Hostaway API example we have parses: the project's own (always) and
//! the shared corpus's auth, envelope, listing and calendar payloads (when
//! present; required when `CI=true`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use connector_tests::fixtures::{json_files, own, read_json, shared};
use mapping::api::{
    ApiStatus, error_text, parse_access_token, parse_calendar_day, parse_envelope, parse_listing,
    parse_unified_webhook,
};
use secrecy::ExposeSecret;
use serde_json::Value;

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn own_api_fixtures_parse_with_their_quirks() {
    let dir = own().join("api");
    let get = |name: &str| bytes(&dir.join(name));

    let bare = parse_access_token(&get("token_bare.json")).unwrap();
    assert_eq!(bare.expires_in, Some(Duration::from_secs(63_072_000)));
    let wrapped = parse_access_token(&get("token_wrapped.json")).unwrap();
    assert_eq!(wrapped.token.expose_secret(), "wrapped-token-value");
    assert_eq!(
        wrapped.expires_in,
        Some(Duration::from_secs(86_400)),
        "expires_in as a string"
    );
    let jwt = parse_access_token(&get("token_jwt_only.json")).unwrap();
    assert_eq!(
        jwt.expires_in,
        Some(Duration::from_secs(63_072_000)),
        "lifetime from the JWT"
    );

    assert_eq!(
        error_text(&get("error_401_invalid_client.json")).as_deref(),
        Some("Client authentication failed")
    );
    assert!(
        error_text(&get("error_403_token_expired.json"))
            .unwrap()
            .contains("expired")
    );
    assert_eq!(
        error_text(&get("error_403_locked.json")).as_deref(),
        Some("Cannot modify reservation")
    );
    assert_eq!(
        error_text(&get("error_404.json")).as_deref(),
        Some("Resource not found")
    );
    assert!(
        error_text(&get("error_429.json"))
            .unwrap()
            .contains("rate limits")
    );
    assert_eq!(
        parse_envelope(&get("fail_with_http_200.json"))
            .unwrap()
            .status,
        Some(ApiStatus::Fail)
    );

    let reservations = parse_envelope(&get("envelope_reservations_real_keys.json")).unwrap();
    assert_eq!(
        (
            reservations.count,
            reservations.page,
            reservations.total_pages
        ),
        (Some(2), None, None)
    );
    let account = domain::AccountId::parse("70001").unwrap();
    for record in reservations.result.as_array().unwrap() {
        mapping::map_reservation(
            &account,
            mapping::WebhookEvent::ReservationUpdated,
            record.as_object().unwrap(),
            None,
            domain::Origin::ApiRead,
        )
        .unwrap();
    }
    let past_end = parse_envelope(&get("envelope_all_keys_past_end.json")).unwrap();
    assert_eq!(past_end.result, Value::Array(vec![]));
    assert_eq!((past_end.page, past_end.total_pages), (Some(2), Some(1)));
    let hooks = parse_envelope(&get("envelope_no_paging.json")).unwrap();
    let hook = parse_unified_webhook(hooks.result[0].as_object().unwrap()).unwrap();
    assert!(hook.is_enabled && hook.has_password && hook.alerting_email_address.is_none());

    let listing = parse_listing(
        read_json(&dir.join("listing_real_quirks.json"))
            .as_object()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        listing.currency.map(|c| c.to_string()).as_deref(),
        Some("USD")
    );
    assert_eq!(listing.person_capacity, Some(6), "a count sent as a string");
    let days = parse_envelope(&get("calendar_days.json")).unwrap();
    let parsed: Vec<_> = days
        .result
        .as_array()
        .unwrap()
        .iter()
        .map(|d| parse_calendar_day(d.as_object().unwrap()).unwrap())
        .collect();
    assert_eq!(parsed[1].is_available, Some(false));
    assert_eq!(parsed[1].closed_on_departure, Some(true), "true beside 0/1");
    assert_eq!(parsed[1].minimum_stay, Some(2));
    assert_eq!(parsed[1].note, None, "\"\" is no note");
}

#[test]
fn the_shared_api_corpus_parses_when_present() {
    let Some(root) = shared() else {
        eprintln!("shared fixture corpus absent: skipped (required when CI=true)");
        return;
    };
    let auth = root.join("auth");
    let tokens = [
        "docs_access_token_response.json",
        "ha_access_token_response_wrapped.json",
    ];
    for name in tokens {
        let token =
            parse_access_token(&bytes(&auth.join(name))).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(token.expires_in.is_some(), "{name}");
    }
    for file in json_files(&auth) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if tokens.contains(&name.as_str()) || name.contains("revoke") {
            continue;
        }
        assert!(error_text(&bytes(&file)).is_some(), "{name}: an error text");
    }
    assert_eq!(
        parse_envelope(&bytes(&auth.join("docs_revoke_token_response.json")))
            .unwrap()
            .status,
        Some(ApiStatus::Success)
    );
    assert_eq!(
        parse_envelope(&bytes(&auth.join("ha_fail_with_http200__client_test.json")))
            .unwrap()
            .status,
        Some(ApiStatus::Fail),
        "a failure on an HTTP 200"
    );

    for file in json_files(&root.join("envelopes")) {
        let envelope =
            parse_envelope(&bytes(&file)).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            envelope.status,
            Some(ApiStatus::Success),
            "{}",
            file.display()
        );
    }

    let listings = root.join("listings");
    for file in json_files(&listings) {
        let value = read_json(&file);
        let listing = parse_listing(value.as_object().unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(listing.currency.is_some(), "{}", file.display());
    }
    let envelope = parse_envelope(&bytes(
        &root.join("envelopes/sync_listings_page0__truncated.json"),
    ))
    .unwrap();
    for record in envelope.result.as_array().unwrap() {
        parse_listing(record.as_object().unwrap()).unwrap();
    }

    let day = read_json(&root.join("calendar/docs_calendar_day_object.json"));
    let day = parse_calendar_day(day.as_object().unwrap()).unwrap();
    assert_eq!(
        (day.is_available, day.status.as_deref()),
        (Some(false), Some("reserved"))
    );
    // The documented request bodies are what our intervals serialize to.
    let body = read_json(&root.join("calendar/docs_put_calendarIntervals_body.json"));
    for interval in body.as_array().unwrap() {
        let start = interval["startDate"].as_str().unwrap();
        let mut ours = mapping::api::CalendarInterval::new(
            start.parse().unwrap(),
            interval["endDate"].as_str().unwrap().parse().unwrap(),
        );
        ours.is_available = Some(interval["isAvailable"] == 1);
        ours.price = interval["price"].as_f64();
        ours.minimum_stay = interval["minimumStay"].as_i64();
        ours.maximum_stay = interval["maximumStay"].as_i64();
        ours.note = interval["note"].as_str().map(str::to_owned);
        let serialized = serde_json::to_value(&ours).unwrap();
        for key in [
            "startDate",
            "endDate",
            "isAvailable",
            "minimumStay",
            "maximumStay",
            "note",
        ] {
            assert_eq!(serialized[key], interval[key], "{key}");
        }
        assert_eq!(serialized["price"].as_f64(), interval["price"].as_f64());
    }
}
