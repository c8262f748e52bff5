//! Plain-text tables for the terminal.

use store::accounts::AccountSummary;
use store::bookings::{BlockView, BookingView, DoubleBookingView};
use store::links::ListingLink;
use store::webhook_log::WebhookLogView;

fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!(
        "{}",
        line(headers.iter().map(|h| (*h).to_owned()).collect())
    );
    for row in rows {
        println!("{}", line(row));
    }
}

fn opt<T: ToString>(value: &Option<T>) -> String {
    value
        .as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

fn money(minor: Option<i64>, currency: &Option<String>) -> String {
    match (minor, currency) {
        (Some(minor), Some(currency)) => {
            let exponent = domain::Currency::parse(currency)
                .map(|c| c.minor_exponent())
                .unwrap_or(2);
            match domain::Currency::parse(currency)
                .and_then(|c| domain::Money::from_minor_units(minor, c))
            {
                Ok(m) if exponent > 0 => m.to_string(),
                _ => format!("{minor} {currency}"),
            }
        }
        _ => "-".to_owned(),
    }
}

pub fn accounts(rows: &[AccountSummary]) {
    table(
        &[
            "ACCOUNT",
            "NAME",
            "LOGIN",
            "API KEY",
            "BASIC",
            "HMAC",
            "ROTATION UNTIL",
            "ENABLED",
        ],
        rows.iter()
            .map(|a| {
                vec![
                    a.account.to_string(),
                    opt(&a.display_name),
                    opt(&a.webhook_login),
                    yes(a.has_api_key),
                    yes(a.has_webhook_password),
                    yes(a.has_webhook_secret),
                    opt(&a.rotation_until.map(|t| t.to_rfc3339())),
                    yes(a.enabled),
                ]
            })
            .collect(),
    );
}

fn yes(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_owned()
}

pub fn links(rows: &[ListingLink]) {
    table(
        &["ACCOUNT", "LISTING", "UNIT"],
        rows.iter()
            .map(|l| {
                vec![
                    l.account.to_string(),
                    l.listing.to_string(),
                    l.unit.to_string(),
                ]
            })
            .collect(),
    );
}

pub fn bookings(rows: &[BookingView]) {
    table(
        &[
            "RESERVATION",
            "LISTING",
            "STATUS",
            "ARRIVAL",
            "DEPARTURE",
            "NIGHTS",
            "GUEST",
            "TOTAL",
            "CHANNEL",
            "BLOCK",
            "HOSTAWAY UPDATED",
            "BOOKING ID",
        ],
        rows.iter()
            .map(|b| {
                vec![
                    b.external_id.clone(),
                    b.hostaway_listing_id.clone(),
                    b.status.clone(),
                    b.arrival_date.to_string(),
                    b.departure_date.to_string(),
                    b.nights.to_string(),
                    opt(&b.guest_name),
                    money(b.total_amount_minor, &b.currency),
                    opt(&b.channel_name),
                    opt(&b.block_kind),
                    opt(&b.source_updated_at),
                    b.id.to_string(),
                ]
            })
            .collect(),
    );
}

pub fn blocks(rows: &[BlockView]) {
    table(
        &[
            "UNIT",
            "FROM",
            "TO (FREE)",
            "KIND",
            "RESERVATION",
            "BOOKING ID",
        ],
        rows.iter()
            .map(|b| {
                vec![
                    b.unit_id.to_string(),
                    b.start_date.to_string(),
                    b.end_date.to_string(),
                    b.kind.clone(),
                    b.external_id.clone(),
                    b.booking_id.to_string(),
                ]
            })
            .collect(),
    );
}

pub fn double_bookings(rows: &[DoubleBookingView]) {
    table(
        &[
            "UNIT",
            "BOOKING A",
            "BOOKING B",
            "NIGHTS FROM",
            "TO",
            "RESOLVED",
        ],
        rows.iter()
            .map(|d| {
                vec![
                    d.unit_id.to_string(),
                    d.booking_a.to_string(),
                    d.booking_b.to_string(),
                    d.overlap_start.to_string(),
                    d.overlap_end.to_string(),
                    yes(d.resolved),
                ]
            })
            .collect(),
    );
}

pub fn webhooks(rows: &[WebhookLogView]) {
    table(
        &[
            "WEBHOOK",
            "ACCOUNT",
            "EVENT",
            "OBJECT",
            "STATUS",
            "OUTCOME",
            "DELIVERIES",
            "ATTEMPTS",
            "ERROR / ADJUSTMENTS",
        ],
        rows.iter()
            .map(|w| {
                vec![
                    w.webhook_id.clone(),
                    w.hostaway_account_id.clone(),
                    w.event.clone(),
                    opt(&w.object_id),
                    w.status.clone(),
                    opt(&w.outcome),
                    w.deliveries.to_string(),
                    w.attempts.to_string(),
                    w.error
                        .clone()
                        .or_else(|| w.adjustments.clone())
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect(),
    );
}

pub fn parked(rows: &[store::parked::ParkedView]) {
    table(
        &[
            "WEBHOOK",
            "ACCOUNT",
            "EVENT",
            "REASON",
            "RESERVATION",
            "LISTING",
            "RETRIES",
            "PARKED AT (UTC)",
            "NEXT RELEASE (UTC)",
        ],
        rows.iter()
            .map(|p| {
                vec![
                    p.webhook_id.clone(),
                    p.hostaway_account_id.clone(),
                    p.event.clone(),
                    p.reason.clone(),
                    opt(&p.reservation_id),
                    opt(&p.listing_id),
                    p.retries.to_string(),
                    p.parked_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    p.due_at.map_or_else(
                        || "when the account is enabled".to_owned(),
                        |at| at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    ),
                ]
            })
            .collect(),
    );
}
