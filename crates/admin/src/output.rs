//! Plain-text tables for the terminal.

use admin_api::proto;

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

/// Empty text shows as `-`.
fn dash(value: &str) -> String {
    if value.is_empty() {
        "-".to_owned()
    } else {
        value.to_owned()
    }
}

pub fn instant(at: Option<&prost_types::Timestamp>) -> String {
    at.and_then(|t| {
        chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
    })
    .map_or_else(
        || "-".to_owned(),
        |at| at.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

fn yes(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_owned()
}

fn money(minor: Option<i64>, currency: &str) -> String {
    match (minor, currency) {
        (Some(minor), currency) if !currency.is_empty() => {
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

pub fn accounts(rows: &[proto::Account]) {
    table(
        &[
            "ACCOUNT",
            "NAME",
            "LOGIN",
            "CREDENTIALS (AGE IN DAYS)",
            "ROTATION UNTIL (UTC)",
            "ENABLED",
            "CONFIG",
        ],
        rows.iter()
            .map(|a| {
                let credentials: Vec<String> = a
                    .credentials
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {}d{}",
                            c.name,
                            c.age_days,
                            if c.rotation_due { " ROTATE" } else { "" }
                        )
                    })
                    .collect();
                vec![
                    a.account_id.clone(),
                    dash(&a.display_name),
                    dash(&a.webhook_login),
                    dash(&credentials.join(", ")),
                    instant(a.rotation_until.as_ref()),
                    yes(a.enabled),
                    format!("v{}", a.config_version),
                ]
            })
            .collect(),
    );
}

pub fn listings(rows: &[proto::Listing]) {
    table(
        &["LISTING", "NAME", "ADDRESS", "UNIT", "SUGGESTED UNITS"],
        rows.iter()
            .map(|l| {
                let suggestions: Vec<String> = l
                    .suggestions
                    .iter()
                    .map(|s| format!("{} ({:.0} %: {})", s.unit_id, s.score * 100.0, s.reason))
                    .collect();
                vec![
                    l.listing_id.clone(),
                    dash(&l.name),
                    dash(&l.address),
                    if l.unit_id.is_empty() {
                        "not linked".to_owned()
                    } else {
                        l.unit_id.clone()
                    },
                    dash(&suggestions.join("; ")),
                ]
            })
            .collect(),
    );
}

pub fn config(c: &proto::ChannelConfig) {
    let sync = c.sync.clone().unwrap_or_default();
    let api = c.api.unwrap_or_default();
    let rate = c.rate_limit.unwrap_or_default();
    let webhook = c.webhook.unwrap_or_default();
    let breaker = c.circuit_breaker.unwrap_or_default();
    println!(
        "account {} configuration v{}{}",
        c.account_id,
        c.version,
        if c.version == 0 {
            " (the defaults)".to_owned()
        } else {
            format!(", set {} by {}", instant(c.set_at.as_ref()), c.set_by)
        }
    );
    table(
        &["SETTING", "VALUE"],
        [
            ("sync.enabledTypes", sync.enabled_types.join(",")),
            ("sync.schedules.availability", sync.availability_schedule),
            ("sync.schedules.pricing", sync.pricing_schedule),
            ("sync.schedules.listings", sync.listings_schedule),
            ("webhook.enabled", webhook.enabled.to_string()),
            (
                "webhook.retryPolicy.maxAttempts",
                webhook.retry_max_attempts.to_string(),
            ),
            (
                "webhook.retryPolicy.backoffMs",
                webhook.retry_backoff_ms.to_string(),
            ),
            ("api.timeout", api.timeout_ms.to_string()),
            ("api.maxRetries", api.max_retries.to_string()),
            (
                "rateLimit.maxRequestsPerMinute",
                rate.max_requests_per_minute.to_string(),
            ),
            ("rateLimit.burstCapacity", rate.burst_capacity.to_string()),
            ("circuitBreaker.enabled", breaker.enabled.to_string()),
            (
                "circuitBreaker.failureThreshold",
                breaker.failure_threshold.to_string(),
            ),
            (
                "circuitBreaker.resetTimeoutMs",
                breaker.reset_timeout_ms.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| vec![k.to_owned(), v])
        .collect(),
    );
}

pub fn dead_letters(rows: &[proto::DeadLetter]) {
    table(
        &[
            "ID",
            "FAILED AT (UTC)",
            "ACCOUNT",
            "JOB",
            "JOB ID",
            "ATTEMPTS",
            "ERROR KIND",
            "STATE",
        ],
        rows.iter()
            .map(|l| {
                let state = if l.resolved_at.is_some() {
                    "resolved".to_owned()
                } else if l.replay_count > 0 {
                    format!("replayed ×{}", l.replay_count)
                } else {
                    "open".to_owned()
                };
                vec![
                    l.id.clone(),
                    instant(l.failed_at.as_ref()),
                    dash(&l.account_id),
                    l.job_name.clone(),
                    l.job_id.clone(),
                    l.attempts.to_string(),
                    dash(&l.error_kind),
                    state,
                ]
            })
            .collect(),
    );
}

pub fn dead_letter(l: &proto::DeadLetter) {
    let data: serde_json::Value =
        serde_json::from_str(&l.data_json).unwrap_or(serde_json::Value::Null);
    let shown = serde_json::json!({
        "id": l.id,
        "jobId": l.job_id,
        "jobName": l.job_name,
        "accountId": l.account_id,
        "failedAt": instant(l.failed_at.as_ref()),
        "attempts": l.attempts,
        "error": {"kind": l.error_kind, "message": l.error_message},
        "data": data,
        "replayCount": l.replay_count,
        "replayedAt": instant(l.replayed_at.as_ref()),
        "resolvedAt": instant(l.resolved_at.as_ref()),
        "body": l.body,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&shown).unwrap_or_default()
    );
}

pub fn sync_status(s: &proto::SyncStatus) {
    println!(
        "account {}: configuration v{} (sync types: {}); circuit {}; budget {}/{} requests in the last 10 s; {} open dead letter(s)",
        s.account_id,
        s.config_version,
        s.enabled_types.join(","),
        if s.circuit_open {
            format!("OPEN until {}", instant(s.circuit_open_until.as_ref()))
        } else {
            "closed".to_owned()
        },
        s.budget_used,
        s.budget_limit,
        s.open_dead_letters
    );
    let mut rows = Vec::new();
    for l in &s.listings {
        let jobs: Vec<String> = l
            .jobs
            .iter()
            .map(|j| {
                format!(
                    "{}{} ok {} ×{} calls {}{}",
                    j.sync_type,
                    if j.running { " (running)" } else { "" },
                    instant(j.last_success_at.as_ref()),
                    j.attempts,
                    j.calls,
                    if j.last_error.is_empty() {
                        String::new()
                    } else {
                        format!(" error: {}", j.last_error)
                    }
                )
            })
            .collect();
        rows.push(vec![
            l.listing_id.clone(),
            l.unit_id.clone(),
            l.pending_availability_days.to_string(),
            l.pending_pricing_days.to_string(),
            l.fewest_writes.to_string(),
            dash(&jobs.join("; ")),
        ]);
    }
    table(
        &[
            "LISTING",
            "UNIT",
            "PENDING AVAIL",
            "PENDING $",
            "FEWEST WRITES",
            "JOBS",
        ],
        rows,
    );
    println!(
        "fewest calendar writes for all of it: {}",
        s.listings.iter().map(|l| l.fewest_writes).sum::<i64>()
    );
    let in_line = s
        .listings
        .iter()
        .filter(|l| l.pending_availability_days == 0 && l.pending_pricing_days == 0)
        .count();
    println!("{in_line}/{} listing(s) in line with TVL", s.listings.len());
}

pub fn audit(rows: &[proto::AuditEntry]) {
    table(
        &[
            "AT (UTC)", "ACTOR", "ROLE", "METHOD", "ACCOUNT", "OUTCOME", "DETAIL",
        ],
        rows.iter()
            .map(|e| {
                vec![
                    instant(e.at.as_ref()),
                    e.actor.clone(),
                    e.role.clone(),
                    e.method.clone(),
                    dash(&e.account_id),
                    e.outcome.clone(),
                    e.detail_json.clone(),
                ]
            })
            .collect(),
    );
}

pub fn bookings(rows: &[proto::Booking]) {
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
                    b.reservation_id.clone(),
                    b.listing_id.clone(),
                    b.status.clone(),
                    b.arrival_date.clone(),
                    b.departure_date.clone(),
                    b.nights.to_string(),
                    dash(&b.guest_name),
                    money(b.total_minor, &b.currency),
                    dash(&b.channel_name),
                    dash(&b.block_kind),
                    dash(&b.hostaway_updated_on),
                    b.booking_id.clone(),
                ]
            })
            .collect(),
    );
}

pub fn blocks(rows: &[proto::Block]) {
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
                    b.unit_id.clone(),
                    b.start_date.clone(),
                    b.end_date.clone(),
                    b.kind.clone(),
                    b.reservation_id.clone(),
                    b.booking_id.clone(),
                ]
            })
            .collect(),
    );
}

pub fn double_bookings(rows: &[proto::DoubleBooking]) {
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
                    d.unit_id.clone(),
                    d.booking_a.clone(),
                    d.booking_b.clone(),
                    d.overlap_start.clone(),
                    d.overlap_end.clone(),
                    yes(d.resolved),
                ]
            })
            .collect(),
    );
}

pub fn webhooks(rows: &[proto::WebhookLogEntry]) {
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
                    w.account_id.clone(),
                    w.event.clone(),
                    dash(&w.object_id),
                    w.status.clone(),
                    dash(&w.outcome),
                    w.deliveries.to_string(),
                    w.attempts.to_string(),
                    if w.error.is_empty() {
                        dash(&w.adjustments)
                    } else {
                        w.error.clone()
                    },
                ]
            })
            .collect(),
    );
}

pub fn parked(rows: &[proto::ParkedWebhook]) {
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
                    p.account_id.clone(),
                    p.event.clone(),
                    p.reason.clone(),
                    dash(&p.reservation_id),
                    dash(&p.listing_id),
                    p.retries.to_string(),
                    instant(p.parked_at.as_ref()),
                    if p.due_at.is_some() {
                        instant(p.due_at.as_ref())
                    } else {
                        "when the account is enabled".to_owned()
                    },
                ]
            })
            .collect(),
    );
}

pub fn tokens(rows: &[store::admin::AdminToken]) {
    table(
        &[
            "ID",
            "NAME",
            "ROLE",
            "CREATED (UTC)",
            "LAST USED (UTC)",
            "REVOKED (UTC)",
        ],
        rows.iter()
            .map(|t| {
                let at = |at: Option<chrono::DateTime<chrono::Utc>>| {
                    at.map_or_else(
                        || "-".to_owned(),
                        |at| at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    )
                };
                vec![
                    t.id.to_string(),
                    t.name.clone(),
                    t.role.clone(),
                    at(Some(t.created_at)),
                    at(t.last_used_at),
                    at(t.revoked_at),
                ]
            })
            .collect(),
    );
}
