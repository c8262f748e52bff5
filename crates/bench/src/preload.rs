//! A database that already holds a working connector's data: the registry
//! (accounts with encrypted credentials and their listing links) and the
//! bookings of past webhooks, with their blocks and log rows. The benchmarks
//! run against it to show the per-webhook and per-change cost does not grow
//! with what is stored (issue 11, goal 6).

use std::time::Instant;

use connector_tests::TestEnv;
use domain::AccountId;
use futures::StreamExt;
use secrecy::SecretString;

/// Registers `accounts` accounts (ids 1…n, each through the store's own
/// insert, credentials encrypted), each with `listings_per_account` linked
/// listings (`account × 100 + n`).
pub async fn registry(
    env: &TestEnv,
    accounts: usize,
    listings_per_account: i64,
) -> anyhow::Result<()> {
    futures::stream::iter(1..=accounts)
        .map(|n| async move {
            let account = n.to_string();
            env.add_account(store::accounts::NewAccount {
                account: AccountId::parse(&account).expect("account id"),
                display_name: None,
                api_key: Some(SecretString::from(format!("api-{account}"))),
                webhook_login: Some(format!("hostaway-{account}")),
                webhook_password: Some(SecretString::from(format!("pw-{account}"))),
                webhook_secret: None,
            })
            .await;
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    sqlx::query(
        "INSERT INTO listing_links (hostaway_account_id, hostaway_listing_id, unit_id)
         SELECT c.hostaway_account_id, (c.hostaway_account_id::bigint * 100 + g)::text, gen_random_uuid()
         FROM channels c, generate_series(1, $1) g",
    )
    .bind(listings_per_account)
    .execute(&env.pool)
    .await?;
    Ok(())
}

/// `bookings` past bookings spread over every linked listing, each with its
/// block and the processed `webhook_log` row that made it; then `ANALYZE`,
/// as autovacuum would after such a load.
pub async fn bookings(env: &TestEnv, bookings: i64) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut tx = env.pool.begin().await?;
    sqlx::query(
        "CREATE TEMP TABLE preload_links ON COMMIT DROP AS
         SELECT (row_number() OVER (ORDER BY hostaway_account_id, hostaway_listing_id) - 1)::bigint AS k,
                hostaway_account_id, hostaway_listing_id, unit_id
         FROM listing_links",
    )
    .execute(&mut *tx)
    .await?;
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM preload_links")
        .fetch_one(&mut *tx)
        .await?;
    anyhow::ensure!(links > 0, "no listing links to put bookings on");
    sqlx::query(
        "INSERT INTO bookings (id, external_source, external_id, hostaway_account_id, hostaway_listing_id,
             unit_id, status, arrival_date, departure_date, guest_name, total_amount_minor, currency,
             source_updated_at, version_terminal, version_event, version_digest)
         SELECT gen_random_uuid(), 'hostaway', (90000000 + g)::text, l.hostaway_account_id,
                l.hostaway_listing_id, l.unit_id, 'new',
                DATE '2024-01-01' + ((g / $2) % 700)::int * 3,
                DATE '2024-01-01' + ((g / $2) % 700)::int * 3 + 2,
                'Preloaded Guest', 50000, 'USD', TIMESTAMP '2024-01-01', false, 0,
                sha256(g::text::bytea)
         FROM generate_series(0::bigint, $1 - 1) g JOIN preload_links l ON l.k = g % $2",
    )
    .bind(bookings)
    .bind(links)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO availability_blocks (booking_id, unit_id, kind, start_date, end_date)
         SELECT id, unit_id, 'booking', arrival_date, departure_date FROM bookings",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO webhook_log (webhook_id, hostaway_account_id, event, object_id, source, received_at,
             status, outcome, booking_id, processed_at)
         SELECT 'preload-' || external_id, hostaway_account_id, 'reservation.created', external_id,
                'webhook_basic', now() - interval '1 day', 'processed', 'created', id, now() - interval '1 day'
         FROM bookings",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    for table in [
        "bookings",
        "availability_blocks",
        "webhook_log",
        "listing_links",
        "channels",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
            .execute(&env.pool)
            .await?;
    }
    eprintln!(
        "[preload] {bookings} bookings with blocks and log rows over {links} listings in {:.0?}",
        started.elapsed()
    );
    Ok(())
}
