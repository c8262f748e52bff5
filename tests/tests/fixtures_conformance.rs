//! Every Hostaway example we have maps: the project's own fixtures (always),
//! and the shared corpus of documented and captured payloads beside the clone
//! (required when `CI=true`). Each quirk the API reference lists is asserted on
//! the file that carries it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use connector_tests::fixtures::{json_files, own, read_json, shared};
use connector_tests::{TestEnv, eventually};
use domain::{AccountId, Origin, Patch, ReservationStatus, ReservationUpdate};
use mapping::{Webhook, WebhookEvent};
use reqwest::StatusCode;
use serde_json::Value;

fn account() -> AccountId {
    AccountId::parse("70001").unwrap()
}

fn parse(path: &Path) -> Webhook {
    let bytes = std::fs::read(path).unwrap();
    mapping::parse_webhook(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Maps whatever a webhook carries; returns the reservation update if any.
fn map_webhook(path: &Path) -> Option<ReservationUpdate> {
    match parse(path) {
        Webhook::Event {
            account: acct,
            event,
            data,
            sent_at,
            ..
        } => {
            let acct = acct.unwrap_or_else(account);
            match event {
                WebhookEvent::MessageReceived => {
                    mapping::map_message(&acct, &data)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    None
                }
                WebhookEvent::ListingUpdated | WebhookEvent::CalendarUpdated => {
                    mapping::map_listing_change(&data)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    None
                }
                _ => Some(
                    mapping::map_reservation(&acct, event, &data, sent_at, Origin::Webhook)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                        .value,
                ),
            }
        }
        Webhook::Ping { .. } | Webhook::Unknown { .. } => None,
    }
}

fn map_record(path: &Path, record: &Value) -> ReservationUpdate {
    mapping::map_reservation(
        &account(),
        WebhookEvent::ReservationUpdated,
        record
            .as_object()
            .unwrap_or_else(|| panic!("{}: not an object", path.display())),
        None,
        Origin::ApiRead,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    .value
}

#[test]
fn own_webhook_fixtures_map_with_their_quirks() {
    let dir = own().join("webhooks");
    let files = json_files(&dir);
    assert!(files.len() >= 13, "the own corpus is complete");
    for file in &files {
        map_webhook(file);
    }
    let get = |name: &str| map_webhook(&dir.join(name)).unwrap();

    let created = get("reservation_created_airbnb.json");
    assert_eq!(
        created.total.clone().set().unwrap().to_string(),
        "912.35 GBP",
        "a float amount, exactly"
    );
    assert_eq!(created.stay.unwrap().nights(), 4);
    assert_eq!(created.confirmation_code, Patch::Set("HMTEST0001".into()));

    let updated = get("reservation_updated_string_ids.json");
    assert_eq!(updated.reservation.as_str(), "50000001", "string ids");
    assert_eq!(
        updated.total.clone().set().unwrap().minor_units(),
        114_000,
        "an int amount"
    );
    assert_eq!(
        updated.guest.number_of_guests,
        Patch::Set(4),
        "a count sent as a string"
    );
    assert_eq!(updated.guest.infants, Patch::Clear);
    assert!(updated.version > created.version);

    let cancelled = get("reservation_updated_cancelled.json");
    assert_eq!(
        cancelled.status,
        Some(ReservationStatus::Cancelled),
        "cancellation is reservation.updated"
    );
    assert_eq!(cancelled.cancelled_by, Patch::Clear, "cancelledBy: null");
    assert!(cancelled.version.terminal);

    let nested = get("reservation_updated_nested_payload.json");
    assert_eq!(nested.stay, None, "payload.data, partial");
    assert_eq!(nested.status, Some(ReservationStatus::Modified));

    let subset = get("reservation_created_subset_no_currency.json");
    assert_eq!(subset.total, Patch::Absent, "no currency, no money");
    assert_eq!(subset.version.updated_at, None);

    assert!(matches!(
        parse(&dir.join("ping.json")),
        Webhook::Ping { .. }
    ));
    assert!(
        matches!(parse(&dir.join("unknown_event.json")), Webhook::Unknown { ref event, .. } if event == "review.created")
    );
    assert!(matches!(
        parse(&dir.join("legacy_bare_reservation.json")),
        Webhook::Event { legacy: true, .. }
    ));
    let legacy = get("legacy_bare_reservation.json");
    assert_eq!(
        legacy.total.set().unwrap().to_string(),
        "450.00 EUR",
        "an amount sent as a string"
    );

    let spec = get("spec_reservation_created.json");
    assert_eq!(spec.status, Some(ReservationStatus::New));
    assert_eq!(
        spec.guest.phone,
        Patch::Set("+10000000002".into()),
        "guestPhone"
    );
    let spec_cancel = get("spec_reservation_cancelled.json");
    assert_eq!(spec_cancel.status, Some(ReservationStatus::Cancelled));
    assert!(
        spec_cancel.version > spec.version,
        "the envelope timestamp orders spec payloads"
    );

    match parse(&dir.join("message_received.json")) {
        Webhook::Event { data, .. } => {
            let message = mapping::map_message(&account(), &data).unwrap().value;
            assert!(message.is_incoming, "true/false booleans");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn own_reservation_fixtures_map_with_their_quirks() {
    let dir = own().join("reservations");
    let get = |name: &str| map_record(&dir.join(name), &read_json(&dir.join(name)));
    for file in json_files(&dir) {
        map_record(&file, &read_json(&file));
    }
    let engine = get("bookingengine_empty_strings.json");
    assert_eq!(engine.guest.phone, Patch::Clear, "\"\" reads as no value");
    assert_eq!(engine.confirmation_code, Patch::Clear);
    assert_eq!(engine.guest.adults, Patch::Clear);
    let inquiry = get("vrbo_inquiry_dates_unspecified.json");
    assert_eq!(
        inquiry.stay.unwrap().nights(),
        0,
        "isDatesUnspecified keeps its placeholder"
    );
    let long = get("direct_long_stay_float_int_mix.json");
    assert_eq!(long.stay.unwrap().nights(), 150);
    assert_eq!(
        long.total.set().unwrap().to_string(),
        "18788.00 USD",
        "lower-case currency"
    );
    assert_eq!(
        long.guest.number_of_guests,
        Patch::Set(1),
        "a count sent as 1.0"
    );
    let owner = get("owner_stay.json");
    assert_eq!(owner.status, Some(ReservationStatus::OwnerStay));
}

#[test]
fn the_shared_corpus_maps_when_present() {
    let Some(root) = shared() else {
        eprintln!("shared fixture corpus absent: skipped (required when CI=true)");
        return;
    };
    let webhooks = root.join("webhooks");
    let mut mapped = 0;
    for file in json_files(&webhooks) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        // Configuration and log objects of the webhook API, not bodies.
        if name.starts_with("docs_unified_webhook") {
            continue;
        }
        map_webhook(&file);
        mapped += 1;
    }
    assert!(mapped >= 7, "the shared webhook bodies were found");
    let cancelled =
        map_webhook(&webhooks.join("unified_reservation_updated_cancelled__composed.json"))
            .unwrap();
    assert_eq!(cancelled.total.clone().set().unwrap().minor_units(), 48_347);
    assert_eq!(cancelled.status, Some(ReservationStatus::Cancelled));
    assert!(
        map_webhook(&webhooks.join("unified_reservation_created__sync_test.json"))
            .unwrap()
            .total
            .is_absent()
    );
    assert!(matches!(
        parse(&webhooks.join("unified_test_ping__derived.json")),
        Webhook::Ping { .. }
    ));

    let reservations = root.join("reservations");
    let records = json_files(&reservations);
    assert!(records.len() >= 10);
    for file in &records {
        map_record(file, &read_json(file));
    }
    let by_name = |name: &str| {
        map_record(
            &reservations.join(name),
            &read_json(&reservations.join(name)),
        )
    };
    assert_eq!(
        by_name("sync_airbnb2018_cancelled_cancelledBy_null.json").cancelled_by,
        Patch::Clear
    );
    assert_eq!(
        by_name("sync_vrbo2002_inquiry_dates_unspecified_nights0.json")
            .stay
            .unwrap()
            .nights(),
        0
    );
    assert_eq!(
        by_name("docs_reservation_object.json").reservation.as_str(),
        "13",
        "integer ids"
    );
    assert_eq!(
        by_name("sync_airbnb2018_new.json").reservation.as_str(),
        "43970841"
    );

    let envelope = read_json(&root.join("envelopes/sync_reservations_page0__truncated.json"));
    for record in envelope["result"].as_array().unwrap() {
        map_record(&root.join("envelopes"), record);
    }
}

/// Every webhook fixture is accepted by a live gateway as a real sender's would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_webhook_fixture_is_accepted_by_the_gateway() {
    let env = TestEnv::new().await;
    for account in ["70001", "59808", "151651"] {
        env.add_basic_account(account, &format!("login-{account}"), "pw")
            .await;
    }
    let gateway = env.start_gateway().await;
    let mut files = json_files(&own().join("webhooks"));
    if let Some(root) = shared() {
        files.extend(json_files(&root.join("webhooks")).into_iter().filter(|f| {
            !f.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("docs_unified_webhook")
        }));
    }
    let mut published = 0;
    for file in &files {
        let body = std::fs::read(file).unwrap();
        let webhook = mapping::parse_webhook(&body).unwrap();
        let account = webhook
            .account()
            .map_or_else(|| "70001".to_owned(), ToString::to_string);
        let auth = mapping::signature::basic_authorization(&format!("login-{account}"), "pw");
        let path = format!("/webhooks/hostaway/{account}");
        let (status, answer) = gateway.post(&path, &[("authorization", auth)], body).await;
        assert_eq!(status, StatusCode::OK, "{}: {answer}", file.display());
        if answer.get("webhookId").is_some() {
            published += 1;
        }
    }
    let expected = published;
    eventually(
        "every accepted webhook on the stream",
        connector_tests::DEADLINE,
        || async {
            (env.stream_len(&env.topology.webhooks_stream()).await == expected).then_some(())
        },
    )
    .await;
}

/// The simulator serves records with exactly the keys of the captured real
/// listing and every key the captured reservations carry, so the connect and
/// polling flows run on what Hostaway really sends.
#[tokio::test]
async fn the_simulator_serves_records_with_the_keys_of_real_ones() {
    let Some(dir) = shared() else {
        return;
    };
    let result = |path: &Path| {
        let value = read_json(path);
        value.get("result").cloned().unwrap_or(value)
    };
    let keys = |value: &Value| -> std::collections::BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    };
    let sim = hostaway_sim::Sim::start(
        "127.0.0.1:0".parse().unwrap(),
        hostaway_sim::SimConfig::default(),
    )
    .await
    .unwrap();
    sim.add_account("70001", "secret").await;
    let listing = sim
        .add_listing("70001", serde_json::Map::new())
        .await
        .unwrap();
    let reservation = sim
        .create_reservation("70001", listing, serde_json::Map::new())
        .await
        .unwrap();
    let (served_listing, served_reservation) = {
        let state = sim.state.lock().await;
        let account = &state.accounts["70001"];
        (
            Value::Object(account.listings[&listing].clone()),
            Value::Object(account.reservations[&reservation].clone()),
        )
    };
    let real_listing = result(&dir.join("listings/sync_listing_house_218666.json"));
    assert_eq!(keys(&served_listing), keys(&real_listing));
    let mut real_reservation_keys = std::collections::BTreeSet::new();
    for path in json_files(&dir.join("reservations")) {
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("sync_"))
        {
            real_reservation_keys.extend(keys(&result(&path)));
        }
    }
    assert_eq!(keys(&served_reservation), real_reservation_keys);
}
