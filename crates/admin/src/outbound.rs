//! `hostaway-admin changes`: publish a TVL change by hand, exactly as a TVL
//! service would (validated against the contract first: a change the
//! dispatcher would refuse is refused here, and nothing is published). It
//! stands in for TVL, so it talks to NATS as TVL does, not to the operations
//! API.

use anyhow::{Context, bail};
use async_nats::jetstream::{self, message::PublishMessage};
use chrono::{NaiveDate, Utc};
use clap::Subcommand;
use domain::{Currency, Money, UnitId};
use events::{Message as _, pb};
use service_kit::config::NatsArgs;
use service_kit::nats::Topology;
use store::PgPool;
use sync_dispatcher::contract;

const SOURCE: &str = "hostaway-admin";

#[derive(Debug, Subcommand)]
pub enum ChangesCommand {
    /// Nights bookable or not, and their stay rules, for days FROM..=TO.
    Availability {
        #[arg(long)]
        unit_id: UnitId,
        #[arg(long)]
        from: NaiveDate,
        #[arg(long)]
        to: NaiveDate,
        #[arg(long)]
        available: Option<bool>,
        #[arg(long)]
        min_stay: Option<u32>,
        #[arg(long)]
        max_stay: Option<u32>,
    },
    /// The nightly price of days FROM..=TO (in the listing's currency).
    Price {
        #[arg(long)]
        unit_id: UnitId,
        #[arg(long)]
        from: NaiveDate,
        #[arg(long)]
        to: NaiveDate,
        /// A decimal amount, e.g. 149.50.
        #[arg(long)]
        price: String,
        #[arg(long)]
        currency: String,
    },
    /// Listing details.
    Listing {
        #[arg(long)]
        unit_id: UnitId,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        person_capacity: Option<u32>,
        #[arg(long)]
        bedrooms: Option<u32>,
        #[arg(long)]
        bathrooms: Option<u32>,
        #[arg(long)]
        check_in_hour: Option<u32>,
        #[arg(long)]
        check_out_hour: Option<u32>,
    },
    /// A random burst of availability and price changes over every linked
    /// unit, days 1..=DAYS from today (the demo's).
    Burst {
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 60)]
        days: i64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The currency of the prices (the listings').
        #[arg(long, default_value = "USD")]
        currency: String,
    },
}

struct Publisher {
    js: jetstream::Context,
    topology: Topology,
}

impl Publisher {
    async fn connect(nats: &NatsArgs) -> anyhow::Result<Self> {
        let client = nats.connect("hostaway-admin").await?;
        Ok(Self {
            js: jetstream::new(client),
            topology: nats.topology()?,
        })
    }

    /// Publishes an availability change made now; returns its id.
    async fn availability(
        &self,
        unit: UnitId,
        (from, to): (NaiveDate, NaiveDate),
        available: Option<bool>,
        min_stay: Option<u32>,
        max_stay: Option<u32>,
    ) -> anyhow::Result<String> {
        let header = contract::new_header(unit, SOURCE);
        let id = header.change_id.clone();
        let message = pb::AvailabilityChange {
            header: Some(header),
            dates: contract::dates(from, to),
            available,
            min_stay,
            max_stay,
        };
        self.publish("availability", unit, &id, message.encode_to_vec())
            .await?;
        Ok(id)
    }

    /// Publishes a price change made now; returns its id.
    async fn price(
        &self,
        unit: UnitId,
        (from, to): (NaiveDate, NaiveDate),
        price: Money,
    ) -> anyhow::Result<String> {
        let header = contract::new_header(unit, SOURCE);
        let id = header.change_id.clone();
        let message = pb::PriceChange {
            header: Some(header),
            dates: contract::dates(from, to),
            nightly_price: Some(events::money(price)),
        };
        self.publish("pricing", unit, &id, message.encode_to_vec())
            .await?;
        Ok(id)
    }

    /// Validates the change as the dispatcher will, then publishes it.
    async fn publish(
        &self,
        kind: &str,
        unit: UnitId,
        change_id: &str,
        payload: Vec<u8>,
    ) -> anyhow::Result<()> {
        let subject = self.topology.change_subject(kind, &unit.to_string());
        contract::decode(self.topology.namespace(), &subject, &payload, Utc::now())
            .context("the change breaks the contract; nothing was published")?;
        self.js
            .send_publish(
                subject,
                PublishMessage::build()
                    .payload(payload.into())
                    .message_id(change_id),
            )
            .await?
            .await
            .context("JetStream did not take the change")?;
        Ok(())
    }
}

pub async fn changes(
    nats: &NatsArgs,
    pool: &PgPool,
    command: &ChangesCommand,
) -> anyhow::Result<()> {
    let publisher = Publisher::connect(nats).await?;
    match command {
        ChangesCommand::Availability {
            unit_id,
            from,
            to,
            available,
            min_stay,
            max_stay,
        } => {
            let id = publisher
                .availability(*unit_id, (*from, *to), *available, *min_stay, *max_stay)
                .await?;
            println!("availability change {id} published");
        }
        ChangesCommand::Price {
            unit_id,
            from,
            to,
            price,
            currency,
        } => {
            let currency = Currency::parse(currency.trim()).context("--currency")?;
            let money = Money::from_decimal(price.trim(), currency).context("--price")?;
            let id = publisher.price(*unit_id, (*from, *to), money).await?;
            println!("price change {id} published");
        }
        ChangesCommand::Listing {
            unit_id,
            name,
            description,
            person_capacity,
            bedrooms,
            bathrooms,
            check_in_hour,
            check_out_hour,
        } => {
            let header = contract::new_header(*unit_id, SOURCE);
            let id = header.change_id.clone();
            let message = pb::ListingDetailsChange {
                header: Some(header),
                name: name.clone(),
                description: description.clone(),
                person_capacity: *person_capacity,
                bedrooms: *bedrooms,
                bathrooms: *bathrooms,
                check_in_hour_start: *check_in_hour,
                check_out_hour: *check_out_hour,
                ..Default::default()
            };
            publisher
                .publish("listing", *unit_id, &id, message.encode_to_vec())
                .await?;
            println!("listing change {id} published");
        }
        ChangesCommand::Burst {
            count,
            days,
            seed,
            currency,
        } => {
            let currency = Currency::parse(currency.trim()).context("--currency")?;
            let units: Vec<UnitId> = {
                let mut units: Vec<UnitId> = store::links::list(pool, None)
                    .await?
                    .into_iter()
                    .map(|l| l.unit)
                    .collect();
                units.sort();
                units.dedup();
                units
            };
            if units.is_empty() {
                bail!("no linked unit: link listings first (hostaway-admin links add)");
            }
            let mut rng = fastrand::Rng::with_seed(*seed);
            let today = Utc::now().date_naive();
            let days = (*days).clamp(1, contract::MAX_RANGE_DAYS - 1);
            for n in 0..*count {
                let unit = units[rng.usize(0..units.len())];
                let start = today + chrono::Duration::days(rng.i64(1..=days));
                let end = (start + chrono::Duration::days(rng.i64(0..7)))
                    .min(today + chrono::Duration::days(days));
                if n % 3 == 2 {
                    let price = Money::from_minor_units(rng.i64(90..=250) * 100, currency)?;
                    publisher.price(unit, (start, end), price).await?;
                } else {
                    let available = Some(rng.u8(0..4) != 0);
                    let min_stay = Some(rng.u32(1..=3));
                    publisher
                        .availability(unit, (start, end), available, min_stay, None)
                        .await?;
                }
            }
            println!("{count} changes published over {} unit(s)", units.len());
        }
    }
    Ok(())
}
