//! The operations API end to end, over gRPC, against real PostgreSQL, real
//! NATS and the Hostaway simulator: connecting an account in one call, who
//! may do what, rotation with an overlap, the audit trail, and a per-account
//! setting honoured by a running dispatcher.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use admin_api::auth::{Method, Role};
use admin_api::proto;
use chrono::Utc;
use connector_tests::admin_api::{AdminClient, RunningAdminApi};
use connector_tests::outbound::{Availability, OutboundWorld, Price, change_id, day};
use connector_tests::payloads::Reservation;
use connector_tests::services::{RunningGateway, metric_labelled, metric_value};
use connector_tests::{DEADLINE, TestEnv, eventually};
use hostaway_sim::{Sim, SimConfig};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use sync_dispatcher::Roles;
use tonic::Code;

const SECRET: &str = "sim-api-secret-74";
/// A gateway URL for tests in which Hostaway sends no webhook.
const NO_GATEWAY: &str = "http://127.0.0.1:1/webhooks/hostaway";

fn fields(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

async fn sim_with(account: &str, listings: &[Value]) -> Sim {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), SimConfig::default())
        .await
        .unwrap();
    sim.add_account(account, SECRET).await;
    for listing in listings {
        sim.add_listing(account, fields(listing.clone()))
            .await
            .unwrap();
    }
    sim
}

fn connect_request(account: &str, secret: &str) -> proto::ConnectAccountRequest {
    proto::ConnectAccountRequest {
        account_id: account.into(),
        client_secret: secret.into(),
        display_name: "Seaside Rentals".into(),
        ..Default::default()
    }
}

/// The unified webhooks the simulator holds for an account: (id, url,
/// login, password, enabled).
async fn registered(sim: &Sim, account: &str) -> Vec<(u64, String, String, String, bool)> {
    let state = sim.state.lock().await;
    state.accounts[account]
        .webhooks
        .values()
        .map(|hook| {
            let text = |k: &str| hook[k].as_str().unwrap_or_default().to_owned();
            (
                hook["id"].as_u64().unwrap(),
                text("url"),
                text("login"),
                text("password"),
                hook["isEnabled"].as_i64() == Some(1),
            )
        })
        .collect()
}

/// Reads the account's configuration (never configured: version 0), edits
/// it, and writes it back as version 1.
async fn configure(
    client: &mut AdminClient,
    account: &str,
    edit: impl FnOnce(&mut proto::ChannelConfig),
) {
    let mut config = client
        .get_channel_config(proto::GetChannelConfigRequest {
            account_id: account.into(),
        })
        .await
        .unwrap()
        .into_inner();
    edit(&mut config);
    client
        .update_channel_config(proto::UpdateChannelConfigRequest {
            account_id: account.into(),
            config: Some(config),
            expected_version: 0,
            force: false,
        })
        .await
        .unwrap();
}

async fn audit(client: &mut AdminClient, account: &str) -> Vec<proto::AuditEntry> {
    client
        .list_audit_entries(proto::ListAuditEntriesRequest {
            account_id: account.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries
}

struct Inbound {
    env: TestEnv,
    gateway: RunningGateway,
    api: RunningAdminApi,
    sim: Sim,
}

/// The gateway and the API; the simulator knows the account and its
/// listings; the connector does not know the account yet.
async fn inbound_world(account: &str, listings: &[Value]) -> Inbound {
    let env = TestEnv::new().await;
    let gateway = env.start_gateway().await;
    let sim = sim_with(account, listings).await;
    let api = env
        .start_admin_api(&sim.base_url(), &gateway.url("/webhooks/hostaway"))
        .await;
    Inbound {
        env,
        gateway,
        api,
        sim,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_connected_in_one_call_sends_its_reservations_to_tvl() {
    let account = "74001";
    let world = inbound_world(
        account,
        &[
            json!({"id": 400101, "name": "Harbour Loft", "address": "12 Quay St"}),
            json!({"id": 400102, "name": "Dune Cottage"}),
        ],
    )
    .await;
    let ingestor = world.env.start_ingestor();
    let owner = world.env.admin_token(Role::Owner).await;
    let mut client = world.api.client(Some(&owner)).await;

    let connected = client
        .connect_account(connect_request(account, SECRET))
        .await
        .unwrap()
        .into_inner();
    assert!(connected.created);
    assert_eq!(connected.listing_count, 2);
    let hooks = registered(&world.sim, account).await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let (hook_id, url, login, password, enabled) = hooks[0].clone();
    assert_eq!(url, world.gateway.url("/webhooks/hostaway"));
    assert_eq!(connected.webhook_id, hook_id.to_string());
    assert_eq!(login, format!("hostaway-{account}"));
    assert!(password.len() >= 40, "a generated password");
    assert!(enabled);
    let stored = connected.account.unwrap();
    let names: Vec<_> = stored.credentials.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["api_key", "webhook_password"]);
    assert!(stored.credentials.iter().all(|c| !c.rotation_due));

    // The listings with their link state; link one through the API.
    let listings = client
        .list_listings(proto::ListListingsRequest {
            account_id: account.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .listings;
    assert_eq!(listings.len(), 2);
    assert!(listings.iter().all(|l| l.unit_id.is_empty()));
    let unit = uuid::Uuid::new_v4().to_string();
    client
        .link_listing(proto::LinkListingRequest {
            account_id: account.into(),
            listing_id: "400101".into(),
            unit_id: unit.clone(),
        })
        .await
        .unwrap();

    // A reservation made at Hostaway reaches TVL through the registered webhook.
    let reservation = world
        .sim
        .create_reservation(
            account,
            400_101,
            fields(json!({"arrivalDate": "2026-12-20", "departureDate": "2026-12-23"})),
        )
        .await
        .unwrap();
    let booking = eventually("the reservation to become a booking", DEADLINE, || async {
        world
            .env
            .bookings()
            .await
            .into_iter()
            .find(|b| b.external_id == reservation.to_string())
    })
    .await;
    assert_eq!(booking.unit_id.to_string(), unit);
    assert!(
        world.sim.deliveries().await.iter().all(|d| d.status == 200),
        "the registered password is the one the gateway accepts"
    );

    // Again: nothing changes, not even at Hostaway.
    let requests_before = world.sim.requests(Some(account)).await.len();
    let again = client
        .connect_account(connect_request(account, SECRET))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.webhook_id, connected.webhook_id);
    assert_eq!(registered(&world.sim, account).await, hooks);
    let writes = world.sim.requests(Some(account)).await[requests_before..]
        .iter()
        .filter(|r| r.method != "GET" && r.path != "/v1/accessTokens")
        .count();
    assert_eq!(writes, 0, "a second connect writes nothing at Hostaway");

    // Other credentials for a connected account: refused, nothing changed.
    let refused = client
        .connect_account(connect_request(account, "another-secret"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(!refused.message().contains("another-secret"));

    let entries = audit(&mut client, account).await;
    let methods: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.method.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        methods,
        [
            ("ConnectAccount", "error"),
            ("ConnectAccount", "ok"),
            ("LinkListing", "ok"),
            ("ConnectAccount", "ok"),
        ],
        "mutating calls only, newest first"
    );
    assert!(entries.iter().all(|e| e.actor == "test-owner"));
    for entry in &entries {
        for secret in [SECRET, "another-secret", password.as_str()] {
            assert!(!entry.detail_json.contains(secret), "{entry:?}");
        }
    }

    // The account's webhook turned off in its configuration: switched off at
    // Hostaway, which then sends nothing.
    configure(&mut client, account, |config| {
        config.webhook.as_mut().unwrap().enabled = false;
    })
    .await;
    let hooks = registered(&world.sim, account).await;
    assert_eq!(hooks.len(), 1);
    assert!(!hooks[0].4, "disabled at Hostaway: {hooks:?}");
    ingestor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_hostaway_refuses_leave_no_account_behind() {
    let world = inbound_world("74002", &[]).await;
    let owner = world.env.admin_token(Role::Owner).await;
    let mut client = world.api.client(Some(&owner)).await;
    let refused = client
        .connect_account(connect_request("74002", "wrong-secret"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(!refused.message().contains("wrong-secret"));
    assert_eq!(world.env.count("SELECT count(*) FROM channels").await, 0);
    assert!(registered(&world.sim, "74002").await.is_empty());

    for (request, field) in [
        (connect_request("74002", ""), "client_secret"),
        (connect_request("not an id", SECRET), "account_id"),
        (
            proto::ConnectAccountRequest {
                webhook_login: "has:colon".into(),
                ..connect_request("74002", SECRET)
            },
            "webhook_login",
        ),
        (
            proto::ConnectAccountRequest {
                alert_email: "nobody".into(),
                ..connect_request("74002", SECRET)
            },
            "alert_email",
        ),
    ] {
        let error = client.connect_account(request).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{field}: {error:?}");
        assert!(error.message().contains(field), "{field}: {error:?}");
    }
    assert_eq!(world.env.count("SELECT count(*) FROM channels").await, 0);
}

/// Calls `method` with a request about `account`; only the status matters.
async fn call(
    client: &mut AdminClient,
    method: Method,
    account: &str,
) -> Result<(), tonic::Status> {
    let a = || account.to_owned();
    let at = Some(prost_types::Timestamp {
        seconds: Utc::now().timestamp() - 60,
        nanos: 0,
    });
    match method {
        Method::ConnectAccount => client
            .connect_account(connect_request(account, "wrong"))
            .await
            .map(drop),
        Method::ListAccounts => client
            .list_accounts(proto::ListAccountsRequest {})
            .await
            .map(drop),
        Method::GetAccount => client
            .get_account(proto::GetAccountRequest { account_id: a() })
            .await
            .map(drop),
        Method::SetAccountEnabled => client
            .set_account_enabled(proto::SetAccountEnabledRequest {
                account_id: a(),
                enabled: true,
            })
            .await
            .map(drop),
        Method::RotateCredentials => client
            .rotate_credentials(proto::RotateCredentialsRequest {
                account_id: a(),
                webhook_secret: "new-hmac-secret".into(),
                ..Default::default()
            })
            .await
            .map(drop),
        Method::FinishRotation => client
            .finish_rotation(proto::FinishRotationRequest { account_id: a() })
            .await
            .map(drop),
        Method::ListListings => client
            .list_listings(proto::ListListingsRequest { account_id: a() })
            .await
            .map(drop),
        Method::LinkListing => client
            .link_listing(proto::LinkListingRequest {
                account_id: a(),
                listing_id: "1".into(),
                unit_id: "not-a-uuid".into(),
            })
            .await
            .map(drop),
        Method::UnlinkListing => client
            .unlink_listing(proto::UnlinkListingRequest {
                account_id: a(),
                listing_id: "1".into(),
            })
            .await
            .map(drop),
        Method::GetChannelConfig => client
            .get_channel_config(proto::GetChannelConfigRequest { account_id: a() })
            .await
            .map(drop),
        Method::UpdateChannelConfig => client
            .update_channel_config(proto::UpdateChannelConfigRequest {
                account_id: a(),
                config: None,
                ..Default::default()
            })
            .await
            .map(drop),
        Method::ListDeadLetters => client
            .list_dead_letters(proto::ListDeadLettersRequest::default())
            .await
            .map(drop),
        Method::GetDeadLetter => client
            .get_dead_letter(proto::GetDeadLetterRequest {
                id: uuid::Uuid::new_v4().to_string(),
            })
            .await
            .map(drop),
        Method::ReplayDeadLetters => client
            .replay_dead_letters(proto::ReplayDeadLettersRequest {
                ids: vec![uuid::Uuid::new_v4().to_string()],
                filter: None,
            })
            .await
            .map(drop),
        Method::ResolveDeadLetters => client
            .resolve_dead_letters(proto::ResolveDeadLettersRequest {
                ids: vec![uuid::Uuid::new_v4().to_string()],
                filter: None,
            })
            .await
            .map(drop),
        Method::PurgeDeadLetters => client
            .purge_dead_letters(proto::PurgeDeadLettersRequest { failed_before: at })
            .await
            .map(drop),
        Method::GetSyncStatus => client
            .get_sync_status(proto::GetSyncStatusRequest {
                account_id: a(),
                listing_id: String::new(),
            })
            .await
            .map(drop),
        Method::TriggerSync => client
            .trigger_sync(proto::TriggerSyncRequest {
                account_id: a(),
                sync_type: "calendar".into(),
                ..Default::default()
            })
            .await
            .map(drop),
        Method::ReemitBookingEvents => client
            .reemit_booking_events(proto::ReemitBookingEventsRequest {
                since: at,
                account_id: a(),
            })
            .await
            .map(drop),
        Method::ListAuditEntries => client
            .list_audit_entries(proto::ListAuditEntriesRequest::default())
            .await
            .map(drop),
        Method::ListBookings => client
            .list_bookings(proto::ListBookingsRequest {
                account_id: a(),
                limit: 10,
            })
            .await
            .map(drop),
        Method::ListBlocks => client
            .list_blocks(proto::ListBlocksRequest::default())
            .await
            .map(drop),
        Method::ListDoubleBookings => client
            .list_double_bookings(proto::ListDoubleBookingsRequest {})
            .await
            .map(drop),
        Method::ListWebhooks => client
            .list_webhooks(proto::ListWebhooksRequest { limit: 5 })
            .await
            .map(drop),
        Method::ListParkedWebhooks => client
            .list_parked_webhooks(proto::ListParkedWebhooksRequest { limit: 5 })
            .await
            .map(drop),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_call_exactly_its_methods_and_a_refusal_changes_nothing() {
    let account = "74003";
    let world = inbound_world(account, &[]).await;
    world
        .env
        .add_basic_account(account, "hostaway", "old-password")
        .await;
    let credentials_before = world
        .env
        .count("SELECT count(*) FROM channels WHERE credentials ? 'encrypted_webhook_secret'")
        .await;
    let mut denied = 0;
    for role in Role::ALL {
        let token = world.env.admin_token(role).await;
        let mut client = world.api.client(Some(&token)).await;
        for method in Method::ALL {
            let result = call(&mut client, method, account).await;
            let code = result.as_ref().err().map(tonic::Status::code);
            if role < method.required_role() {
                denied += 1;
                assert_eq!(code, Some(Code::PermissionDenied), "{role} {method:?}");
            } else {
                assert!(
                    !matches!(code, Some(Code::PermissionDenied | Code::Unauthenticated)),
                    "{role} {method:?}: {result:?}"
                );
            }
        }
    }
    // 3 owner-only methods refused to two roles, 9 operator methods to viewers.
    assert_eq!(denied, 3 * 2 + 9);

    // What the refused calls would have changed is unchanged: no rotation
    // for the operator and viewer (the owner's went through).
    let after = world
        .env
        .count("SELECT count(*) FROM channels WHERE credentials ? 'encrypted_webhook_secret'")
        .await;
    assert_eq!((credentials_before, after), (0, 1));
    let denied_rows = world
        .env
        .count("SELECT count(*) FROM admin_audit WHERE outcome = 'denied'")
        .await;
    assert_eq!(denied_rows, denied, "every refusal is audited");

    // No token, a malformed one, an unknown one, a revoked one.
    let (revoked_id, revoked) = admin_api::auth::issue_token(&world.env.pool, "gone", Role::Owner)
        .await
        .unwrap();
    assert!(
        store::admin::revoke_token(&world.env.pool, revoked_id)
            .await
            .unwrap()
    );
    let unknown = SecretString::from(format!("hwa_{}", "A".repeat(43)));
    let malformed = SecretString::from("hwa_short".to_owned());
    for token in [None, Some(&malformed), Some(&unknown), Some(&revoked)] {
        let mut client = world.api.client(token).await;
        for method in [Method::ListAccounts, Method::RotateCredentials] {
            let error = call(&mut client, method, account).await.unwrap_err();
            assert_eq!(error.code(), Code::Unauthenticated, "{method:?}");
        }
    }
    assert_eq!(
        world
            .env
            .count("SELECT count(*) FROM admin_audit WHERE actor = 'gone'")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_webhook_password_overlaps_then_only_the_new_one_is_accepted() {
    let account = "74004";
    let world = inbound_world(account, &[json!({"id": 400401})]).await;
    let ingestor = world.env.start_ingestor();
    let owner = world.env.admin_token(Role::Owner).await;
    let mut client = world.api.client(Some(&owner)).await;
    client
        .connect_account(connect_request(account, SECRET))
        .await
        .unwrap();
    world.env.link(account, "400401").await;
    let (_, _, login, old_password, _) = registered(&world.sim, account).await[0].clone();

    let rotated = client
        .rotate_credentials(proto::RotateCredentialsRequest {
            account_id: account.into(),
            overlap_seconds: 4,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rotated.rotation_until.is_some());
    let (_, _, _, new_password, _) = registered(&world.sim, account).await[0].clone();
    assert_ne!(
        new_password, old_password,
        "Hostaway was given the new password"
    );

    let body = Reservation::new(7_400_401, 400_401).webhook(account, "reservation.created");
    let post = |password: String| {
        let (gateway, login, body) = (&world.gateway, login.clone(), body.clone());
        async move { gateway.post_basic(&login, &password, &body).await.0 }
    };
    // During the overlap both are accepted (the gateway reloads credentials
    // when they change)…
    eventually("the new password to be accepted", DEADLINE, || async {
        (post(new_password.clone()).await == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(post(old_password.clone()).await, StatusCode::OK);
    // …after it, only the new one.
    eventually("the old password to be refused", DEADLINE, || async {
        (post(old_password.clone()).await == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    assert_eq!(post(new_password.clone()).await, StatusCode::OK);

    // Hostaway, sending with what it was given, still gets through.
    let reservation = world
        .sim
        .create_reservation(
            account,
            400_401,
            fields(json!({"arrivalDate": "2027-01-05", "departureDate": "2027-01-07"})),
        )
        .await
        .unwrap();
    eventually("the reservation to arrive", DEADLINE, || async {
        world
            .env
            .bookings()
            .await
            .into_iter()
            .find(|b| b.external_id == reservation.to_string())
    })
    .await;

    let entries = audit(&mut client, account).await;
    assert_eq!(entries[0].method, "RotateCredentials");
    assert_eq!(entries[0].outcome, "ok");
    assert!(entries[0].detail_json.contains("webhook_password"));
    for entry in &entries {
        assert!(!entry.detail_json.contains(&old_password));
        assert!(!entry.detail_json.contains(&new_password));
    }
    ingestor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_credential_is_reported_due_for_rotation() {
    let account = "74005";
    let world = inbound_world(account, &[]).await;
    world.env.add_basic_account(account, "hostaway", "pw").await;
    let viewer = world.env.admin_token(Role::Viewer).await;
    let mut client = world.api.client(Some(&viewer)).await;
    let fresh = client
        .get_account(proto::GetAccountRequest {
            account_id: account.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        fresh
            .credentials
            .iter()
            .all(|c| !c.rotation_due && c.age_days == 0)
    );
    sqlx::query(
        "UPDATE channels SET webhook_password_set_at = now() - interval '100 days'
         WHERE hostaway_account_id = $1",
    )
    .bind(account)
    .execute(&world.env.pool)
    .await
    .unwrap();
    let old = client
        .get_account(proto::GetAccountRequest {
            account_id: account.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let password = old
        .credentials
        .iter()
        .find(|c| c.name == "webhook_password")
        .unwrap();
    assert!(password.rotation_due);
    assert_eq!(password.age_days, 100);
    eventually("the rotation gauge to count it", DEADLINE, || async {
        (metric_value(&world.api.metrics, "hostaway_credentials_rotation_due") == 1.0).then_some(())
    })
    .await;
    assert!(
        metric_value(
            &world.api.metrics,
            "hostaway_credentials_oldest_age_seconds"
        ) >= 100.0 * 86_400.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_health_checks_and_describes_itself() {
    let world = inbound_world("74006", &[]).await;
    let channel = world.api.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "hostaway.connector.v1.AdminService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    // Reflection: the descriptor set served names every method.
    let descriptor = admin_api::proto::FILE_DESCRIPTOR_SET;
    let text = String::from_utf8_lossy(descriptor);
    for method in Method::ALL {
        assert!(text.contains(method.name()), "{method:?}");
    }
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut answers = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(
        tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(
            list,
        ),
    ) = answer.message_response
    else {
        panic!("a list of services: {answer:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"hostaway.connector.v1.AdminService"),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pricing_sync_turned_off_for_one_account_is_honoured_by_running_dispatchers() {
    let world = OutboundWorld::new(SimConfig::default(), &[("74010", 1), ("74011", 1)]).await;
    let (off, on) = (world.listings[0].clone(), world.listings[1].clone());
    for listing in [&off, &on] {
        store::remote::record_listing_reads(
            &world.env.pool,
            &listing.account,
            &[store::remote::ListingRead {
                listing: listing.listing.to_string(),
                currency: Some(domain::Currency::parse("USD").unwrap()),
                units: 0,
            }],
        )
        .await
        .unwrap();
    }
    // Two dispatchers already running when the setting changes.
    let roles = Roles {
        changes: true,
        jobs: true,
        reconcile: false,
    };
    let first = world.start_dispatcher(roles);
    let second = world.start_dispatcher(roles);
    first.ready().await;
    second.ready().await;
    let api = world
        .env
        .start_admin_api(&world.sim.base_url(), NO_GATEWAY)
        .await;
    let operator = world.env.admin_token(Role::Operator).await;
    let mut client = api.client(Some(&operator)).await;
    let current = client
        .get_channel_config(proto::GetChannelConfigRequest {
            account_id: off.account.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(current.version, 0, "the defaults");
    let mut config = current.clone();
    config
        .sync
        .as_mut()
        .unwrap()
        .enabled_types
        .retain(|t| t != "pricing");
    let updated = client
        .update_channel_config(proto::UpdateChannelConfigRequest {
            account_id: off.account.clone(),
            config: Some(config.clone()),
            expected_version: 0,
            force: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.version, 1);
    assert_eq!(updated.set_by, "test-operator");

    let now = Utc::now();
    for (n, listing) in [&off, &on].into_iter().enumerate() {
        let seq = 10 * n as u64;
        world
            .publish_price(&Price {
                change_id: change_id(seq + 1),
                seq: seq + 1,
                unit: listing.unit,
                start: day(2),
                end: day(4),
                price_minor: 23_400,
                currency: "USD".into(),
                occurred_at: now,
            })
            .await;
        world
            .publish_availability(&Availability {
                change_id: change_id(seq + 2),
                seq: seq + 2,
                unit: listing.unit,
                start: day(2),
                end: day(4),
                available: Some(false),
                min_stay: None,
                occurred_at: now,
                version: 0,
            })
            .await;
    }
    let price_of = |listing: u64| {
        let sim = &world.sim;
        async move {
            let state = sim.state.lock().await;
            state.calendar(listing, day(3), day(3))[0].1.clone()
        }
    };
    eventually(
        "both accounts' availability to be pushed",
        DEADLINE,
        || async {
            let (a, b) = (price_of(off.listing).await, price_of(on.listing).await);
            (!a.is_available && !b.is_available).then_some(())
        },
    )
    .await;
    eventually(
        "the other account's price to be pushed",
        DEADLINE,
        || async { ((price_of(on.listing).await.price - 234.0).abs() < 1e-9).then_some(()) },
    )
    .await;
    world.queue_drained().await;
    assert!(
        (price_of(off.listing).await.price - 234.0).abs() > 1e-9,
        "the account with pricing off keeps Hostaway's price"
    );
    let skipped = metric_labelled(
        &first.metrics,
        "hostaway_sync_jobs_skipped_total",
        ("sync_type", "pricing"),
    ) + metric_labelled(
        &second.metrics,
        "hostaway_sync_jobs_skipped_total",
        ("sync_type", "pricing"),
    );
    assert!(skipped >= 1.0, "the pricing job ran and was skipped");

    // A stale edit is refused; a bad one names its problems and changes nothing.
    let stale = client
        .update_channel_config(proto::UpdateChannelConfigRequest {
            account_id: off.account.clone(),
            config: Some(current.clone()),
            expected_version: 0,
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    let mut bad = config.clone();
    bad.api.as_mut().unwrap().timeout_ms = 0;
    bad.sync.as_mut().unwrap().pricing_schedule = "hourly".into();
    let invalid = client
        .update_channel_config(proto::UpdateChannelConfigRequest {
            account_id: off.account.clone(),
            config: Some(bad),
            expected_version: 1,
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert!(invalid.message().contains("api.timeout"), "{invalid:?}");
    assert!(
        invalid.message().contains("sync.schedules.pricing"),
        "{invalid:?}"
    );

    // Pricing on again: what TVL wanted meanwhile is pushed at once.
    let enabled = client
        .update_channel_config(proto::UpdateChannelConfigRequest {
            account_id: off.account.clone(),
            config: Some(current),
            expected_version: 1,
            force: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(enabled.version, 2);
    eventually(
        "the price to follow once pricing is on",
        DEADLINE,
        || async { ((price_of(off.listing).await.price - 234.0).abs() < 1e-9).then_some(()) },
    )
    .await;
    let status = client
        .get_sync_status(proto::GetSyncStatusRequest {
            account_id: off.account.clone(),
            listing_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.config_version, 2);
    assert_eq!(status.listings.len(), 1);
    assert!(!status.circuit_open);
    api.stop().await;
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_by_filter_replayed_and_resolved_through_the_api() {
    let account = "74007";
    let env = TestEnv::new().await;
    env.add_basic_account(account, "hostaway", "pw").await;
    let gateway = env.start_gateway().await;
    let ingestor = env.start_ingestor_with(|s| {
        s.park_schedule = vec![Duration::from_millis(100), Duration::from_millis(100)]
    });
    // A webhook for a listing never linked waits, then is dead-lettered.
    let body = Reservation::new(7_400_701, 400_701).webhook(account, "reservation.created");
    assert_eq!(
        gateway.post_basic("hostaway", "pw", &body).await.0,
        StatusCode::OK
    );
    let (_, kind) = env.dead_lettered("the unlinked webhook").await;
    assert_eq!(kind, "listing_not_linked");

    let api = env
        .start_admin_api("http://127.0.0.1:1", &gateway.url("/webhooks/hostaway"))
        .await;
    let viewer = env.admin_token(Role::Viewer).await;
    let operator = env.admin_token(Role::Operator).await;
    let mut viewing = api.client(Some(&viewer)).await;
    let mut operating = api.client(Some(&operator)).await;
    let filter = |account: &str| proto::DeadLetterFilter {
        account_id: account.into(),
        kind: "webhook".into(),
        reason: "listing_not_linked".into(),
        ..Default::default()
    };
    let listed = viewing
        .list_dead_letters(proto::ListDeadLettersRequest {
            filter: Some(filter(account)),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .letters;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].account_id, account);
    assert!(listed[0].body.is_empty(), "bodies only when inspected");
    let others = viewing
        .list_dead_letters(proto::ListDeadLettersRequest {
            filter: Some(filter("79999")),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .letters;
    assert!(others.is_empty(), "filtered by account");
    let inspected = viewing
        .get_dead_letter(proto::GetDeadLetterRequest {
            id: listed[0].id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(inspected.body.contains("7400701"), "{inspected:?}");
    assert_eq!(inspected.error_kind, "listing_not_linked");

    // Replayed while its listing is still unlinked: back through the
    // ingestor, counted, still open.
    let replayed = operating
        .replay_dead_letters(proto::ReplayDeadLettersRequest {
            ids: vec![],
            filter: Some(filter(account)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((replayed.done, replayed.failed), (1, 0));
    assert_eq!(replayed.outcomes[0].outcome, "replayed");
    eventually("the replay to be counted", DEADLINE, || {
        let (mut client, id) = (viewing.clone(), listed[0].id.clone());
        async move {
            let letter = client
                .get_dead_letter(proto::GetDeadLetterRequest { id })
                .await
                .unwrap()
                .into_inner();
            (letter.replay_count == 1).then_some(())
        }
    })
    .await;

    let resolved = operating
        .resolve_dead_letters(proto::ResolveDeadLettersRequest {
            ids: vec![listed[0].id.clone()],
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.outcomes[0].outcome, "resolved");
    let purged = operating
        .purge_dead_letters(proto::PurgeDeadLettersRequest {
            failed_before: Some(prost_types::Timestamp {
                seconds: Utc::now().timestamp() + 60,
                nanos: 0,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(purged.purged >= 1);
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letter_queue WHERE resolved_at IS NOT NULL")
            .await,
        0
    );
    let no_target = operating
        .replay_dead_letters(proto::ReplayDeadLettersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(no_target.code(), Code::InvalidArgument);
    ingestor.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_s_own_rate_limit_is_what_every_replica_s_budget_grants() {
    let world = inbound_world("74020", &[]).await;
    for account in ["74020", "74021"] {
        world.env.add_basic_account(account, account, "pw").await;
    }
    let operator = world.env.admin_token(Role::Operator).await;
    let mut client = world.api.client(Some(&operator)).await;
    configure(&mut client, "74020", |config| {
        // 12 a minute: 2 per Hostaway window of 10 s.
        config.rate_limit.as_mut().unwrap().max_requests_per_minute = 12;
    })
    .await;
    let take = |account: &'static str| {
        let pool = world.env.pool.clone();
        async move {
            store::api_shared::take_budget(
                &pool,
                &domain::AccountId::parse(account).unwrap(),
                "egress-74020",
                20,
                100,
                Duration::from_millis(10_300),
                Duration::from_secs(10),
            )
            .await
            .unwrap()
            .granted()
        }
    };
    let configured: Vec<bool> = [
        take("74020").await,
        take("74020").await,
        take("74020").await,
    ]
    .into();
    assert_eq!(
        configured,
        [true, true, false],
        "the account's own 2 per 10 s"
    );
    let unconfigured = [
        take("74021").await,
        take("74021").await,
        take("74021").await,
    ];
    assert_eq!(unconfigured, [true, true, true], "Hostaway's 20 per 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_s_own_attempts_and_circuit_are_what_its_calls_get() {
    let world = inbound_world("74030", &[]).await;
    world.sim.add_account("74031", SECRET).await;
    for account in ["74030", "74031"] {
        world
            .env
            .add_account(store::accounts::NewAccount {
                account: domain::AccountId::parse(account).unwrap(),
                display_name: None,
                api_key: Some(SecretString::from(SECRET.to_owned())),
                webhook_login: None,
                webhook_password: None,
                webhook_secret: None,
            })
            .await;
    }
    let operator = world.env.admin_token(Role::Operator).await;
    let mut client = world.api.client(Some(&operator)).await;
    configure(&mut client, "74030", |config| {
        config.api.as_mut().unwrap().max_retries = 0;
        config.circuit_breaker.as_mut().unwrap().failure_threshold = 2;
    })
    .await;

    // A dispatcher's client: 3 attempts a call, a circuit at 10 failures.
    let mut settings = hostaway_client::ClientConfig {
        base_url: world.sim.base_url(),
        timeout: Some(Duration::from_secs(5)),
        ..hostaway_client::ClientConfig::default()
    };
    settings.retry.max_attempts = 3;
    settings.retry.base = Duration::from_millis(20);
    settings.retry.cap = Duration::from_millis(50);
    let hostaway = sync_dispatcher::shared_api::shared_client(
        settings,
        sync_dispatcher::credentials::from_database(
            world.env.pool.clone(),
            std::sync::Arc::clone(&world.env.cipher),
        ),
        hostaway_client::ClientMetrics::register(&prometheus::Registry::new()).unwrap(),
        world.env.pool.clone(),
        std::sync::Arc::clone(&world.env.cipher),
    )
    .unwrap();
    world.sim.set_faults(hostaway_sim::Faults::errors(1.0));
    // A faulted request is answered before its token says whose it is: count all.
    let sent = || async { world.sim.requests(None).await.len() };
    let before = sent().await;
    let query = hostaway_client::ListingsQuery {
        limit: 1,
        offset: 0,
    };
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let error = hostaway
            .list_listings(&domain::AccountId::parse("74030").unwrap(), &query)
            .await
            .unwrap_err();
        kinds.push(error.kind);
    }
    use hostaway_client::ErrorKind;
    assert_eq!(
        kinds,
        [ErrorKind::Server, ErrorKind::Server, ErrorKind::CircuitOpen],
        "one attempt a call, the circuit open at its second failure"
    );
    assert_eq!(sent().await - before, 2);
    let before = sent().await;
    for _ in 0..3 {
        let error = hostaway
            .list_listings(&domain::AccountId::parse("74031").unwrap(), &query)
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Server);
    }
    assert_eq!(
        sent().await - before,
        9,
        "the other account keeps the client's 3 attempts and its circuit closed"
    );
}

/// The project's own test certificates (`tests/fixtures/tls`).
fn tls_file(name: &str) -> std::path::PathBuf {
    connector_tests::fixtures::repo_root()
        .join("tests/fixtures/tls")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mtls_only_a_client_certificate_of_the_ca_and_a_token_get_in() {
    let env = TestEnv::new().await;
    let api = env
        .start_admin_api_with("http://127.0.0.1:1", NO_GATEWAY, |settings| {
            settings.tls = Some(admin_api::server::TlsFiles {
                certificate: tls_file("server.pem"),
                key: tls_file("server.key"),
                client_ca: Some(tls_file("ca.pem")),
            });
        })
        .await;
    let viewer = env.admin_token(Role::Viewer).await;
    let tls = |identity: Option<&str>| admin_api::client::ClientTls {
        ca: Some(tls_file("ca.pem")),
        identity: identity.map(|name| {
            (
                tls_file(&format!("{name}.pem")),
                tls_file(&format!("{name}.key")),
            )
        }),
    };
    let list = |token: Option<SecretString>, tls: admin_api::client::ClientTls| {
        let url = api.url();
        async move {
            let mut client = admin_api::client::connect_with(&url, token.as_ref(), &tls)
                .await
                .map_err(|e| e.to_string())?;
            client
                .list_accounts(proto::ListAccountsRequest {})
                .await
                .map(drop)
                .map_err(|status| format!("{:?}", status.code()))
        }
    };
    assert_eq!(
        list(Some(viewer.clone()), tls(Some("client"))).await,
        Ok(())
    );
    assert_eq!(
        list(None, tls(Some("client"))).await,
        Err("Unauthenticated".into()),
        "a certificate is not a token"
    );
    for refused in [tls(None), tls(Some("rogue"))] {
        assert!(
            list(Some(viewer.clone()), refused).await.is_err(),
            "no certificate, or one of another CA: no call"
        );
    }
    // Plain h2c to a TLS port goes nowhere either.
    let plain = format!("http://{}", api.addr);
    let refused = async {
        let mut client = admin_api::client::connect(&plain, Some(&viewer))
            .await
            .ok()?;
        client
            .list_accounts(proto::ListAccountsRequest {})
            .await
            .ok()
    }
    .await;
    assert!(refused.is_none());
}
