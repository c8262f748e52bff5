//! The typed operations: listings, calendar, reservations, unified webhooks,
//! and the specification's operation names mapped onto the real endpoints.

use chrono::NaiveDate;
use domain::{AccountId, Currency, ListingId, ReservationId};
use mapping::api::{
    CalendarDay, CalendarInterval, Envelope, Listing, UnifiedWebhook, UnifiedWebhookRequest,
};
use reqwest::Method;
use serde_json::{Map, Value};

use crate::MAX_CALENDAR_INTERVALS;
use crate::error::{ErrorContext, ErrorKind, HostawayError};
use crate::transport::{ApiRequest, HostawayClient};

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Hostaway's `count`: records matching the filters, all pages together.
    pub count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingsQuery {
    pub limit: u32,
    pub offset: u32,
}

impl Default for ListingsQuery {
    fn default() -> Self {
        Self {
            limit: 100,
            offset: 0,
        }
    }
}

/// Filters of `GET /v1/reservations`. Dates are `YYYY-MM-DD`; latest-activity
/// bounds are date-times as Hostaway writes them (`Y-m-d H:i:s`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReservationsQuery {
    pub limit: Option<u32>,
    /// The cursor: the id of the last reservation of the previous page.
    pub after_id: Option<String>,
    pub listing_id: Option<ListingId>,
    pub channel_id: Option<i64>,
    pub latest_activity_start: Option<String>,
    pub latest_activity_end: Option<String>,
    pub arrival_start: Option<NaiveDate>,
    pub arrival_end: Option<NaiveDate>,
    pub departure_start: Option<NaiveDate>,
    pub departure_end: Option<NaiveDate>,
    /// `arrivalDate`, `latestActivity`, `updatedOn`, … (default: updatedOn desc).
    pub sort_order: Option<String>,
    pub include_resources: bool,
}

/// Days made available or not (the specification's `updateAvailability`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityUpdate {
    pub date: NaiveDate,
    pub available: bool,
    pub min_stay: Option<i64>,
    pub max_stay: Option<i64>,
}

/// A nightly price for a day (the specification's `updatePricing`), in minor
/// units of the listing's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricingUpdate {
    pub date: NaiveDate,
    pub price_minor: i64,
    pub currency: Currency,
}

/// Listing arrays Hostaway replaces wholesale: an empty one deletes them all,
/// even when the rest of the update is refused. They are never sent empty.
const REPLACED_ARRAYS: &[&str] = &["listingAmenities", "listingBedTypes", "listingImages"];

fn context(account: &AccountId, method: &'static str, endpoint: &'static str) -> ErrorContext {
    ErrorContext {
        account: account.clone(),
        method,
        endpoint,
    }
}

fn records(
    envelope: Envelope,
    ctx: &ErrorContext,
) -> Result<Vec<Map<String, Value>>, HostawayError> {
    match envelope.result {
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => Ok(map),
                _ => Err(HostawayError::new(
                    ErrorKind::Mapping,
                    ctx.clone(),
                    "a list item is not an object",
                )),
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(HostawayError::new(
            ErrorKind::Mapping,
            ctx.clone(),
            "`result` is not a list",
        )),
    }
}

fn record(envelope: Envelope, ctx: &ErrorContext) -> Result<Map<String, Value>, HostawayError> {
    match envelope.result {
        Value::Object(map) => Ok(map),
        _ => Err(HostawayError::new(
            ErrorKind::Mapping,
            ctx.clone(),
            "`result` is not an object",
        )),
    }
}

fn mapping_error(ctx: &ErrorContext, error: impl ToString) -> HostawayError {
    HostawayError::new(ErrorKind::Mapping, ctx.clone(), error.to_string())
}

impl HostawayClient {
    // ----- listings -------------------------------------------------------

    pub async fn list_listings(
        &self,
        account: &AccountId,
        query: &ListingsQuery,
    ) -> Result<Page<Listing>, HostawayError> {
        let ctx = context(account, "GET", "/listings");
        let request = ApiRequest::new(Method::GET, "/listings", "/listings".into())
            .query("limit", query.limit)
            .query("offset", query.offset);
        let envelope = self.call(account, request).await?;
        let count = envelope.count;
        let items = records(envelope, &ctx)?
            .iter()
            .map(|map| mapping::api::parse_listing(map).map_err(|e| mapping_error(&ctx, e)))
            .collect::<Result<_, _>>()?;
        Ok(Page { items, count })
    }

    /// Every listing of the account, page by page, until a short or empty page
    /// or `count` is reached.
    pub async fn all_listings(&self, account: &AccountId) -> Result<Vec<Listing>, HostawayError> {
        let mut query = ListingsQuery::default();
        let mut all = Vec::new();
        loop {
            let page = self.list_listings(account, &query).await?;
            let received = page.items.len();
            all.extend(page.items);
            let done = received < query.limit as usize
                || page.count.is_some_and(|count| all.len() as u64 >= count);
            if done || received == 0 {
                return Ok(all);
            }
            query.offset += query.limit;
        }
    }

    /// The specification's `getListings`.
    pub async fn get_listings(&self, account: &AccountId) -> Result<Vec<Listing>, HostawayError> {
        self.all_listings(account).await
    }

    /// The specification's `getListing`.
    pub async fn get_listing(
        &self,
        account: &AccountId,
        listing: &ListingId,
    ) -> Result<Listing, HostawayError> {
        let ctx = context(account, "GET", "/listings/{id}");
        let request = ApiRequest::new(
            Method::GET,
            "/listings/{id}",
            format!("/listings/{listing}"),
        );
        let map = record(self.call(account, request).await?, &ctx)?;
        mapping::api::parse_listing(&map).map_err(|e| mapping_error(&ctx, e))
    }

    /// The specification's `createListing`.
    pub async fn create_listing(
        &self,
        account: &AccountId,
        fields: &Map<String, Value>,
    ) -> Result<Listing, HostawayError> {
        let ctx = context(account, "POST", "/listings");
        check_listing_fields(fields, &ctx)?;
        let request = ApiRequest::new(Method::POST, "/listings", "/listings".into())
            .body(Value::Object(fields.clone()));
        let map = record(self.call(account, request).await?, &ctx)?;
        mapping::api::parse_listing(&map).map_err(|e| mapping_error(&ctx, e))
    }

    /// The specification's `updateListing` (`PUT`: Hostaway has no PATCH).
    pub async fn update_listing(
        &self,
        account: &AccountId,
        listing: &ListingId,
        fields: &Map<String, Value>,
    ) -> Result<Listing, HostawayError> {
        let ctx = context(account, "PUT", "/listings/{id}");
        check_listing_fields(fields, &ctx)?;
        let request = ApiRequest::new(
            Method::PUT,
            "/listings/{id}",
            format!("/listings/{listing}"),
        )
        .body(Value::Object(fields.clone()));
        let map = record(self.call(account, request).await?, &ctx)?;
        mapping::api::parse_listing(&map).map_err(|e| mapping_error(&ctx, e))
    }

    // ----- calendar -------------------------------------------------------

    /// The days `[start, end]` of a listing's calendar.
    pub async fn get_calendar(
        &self,
        account: &AccountId,
        listing: &ListingId,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<CalendarDay>, HostawayError> {
        let ctx = context(account, "GET", "/listings/{id}/calendar");
        let request = ApiRequest::new(
            Method::GET,
            "/listings/{id}/calendar",
            format!("/listings/{listing}/calendar"),
        )
        .query("startDate", start)
        .query("endDate", end);
        records(self.call(account, request).await?, &ctx)?
            .iter()
            .map(|map| mapping::api::parse_calendar_day(map).map_err(|e| mapping_error(&ctx, e)))
            .collect()
    }

    /// One range (`PUT /listings/{id}/calendar`); returns the affected days.
    pub async fn update_calendar(
        &self,
        account: &AccountId,
        listing: &ListingId,
        interval: &CalendarInterval,
    ) -> Result<Vec<CalendarDay>, HostawayError> {
        let ctx = context(account, "PUT", "/listings/{id}/calendar");
        let body = serde_json::to_value(interval).map_err(|e| mapping_error(&ctx, e))?;
        let request = ApiRequest::new(
            Method::PUT,
            "/listings/{id}/calendar",
            format!("/listings/{listing}/calendar"),
        )
        .body(body);
        records(self.call(account, request).await?, &ctx)?
            .iter()
            .map(|map| mapping::api::parse_calendar_day(map).map_err(|e| mapping_error(&ctx, e)))
            .collect()
    }

    /// Many ranges (`PUT /listings/{id}/calendarIntervals`), at most 200 per
    /// call: larger batches are split. Returns the calls made. A failed call
    /// stops the batch (the ranges before it are applied).
    pub async fn update_calendar_intervals(
        &self,
        account: &AccountId,
        listing: &ListingId,
        intervals: &[CalendarInterval],
    ) -> Result<usize, HostawayError> {
        let ctx = context(account, "PUT", "/listings/{id}/calendarIntervals");
        let mut calls = 0;
        for chunk in intervals.chunks(MAX_CALENDAR_INTERVALS) {
            let body = serde_json::to_value(chunk).map_err(|e| mapping_error(&ctx, e))?;
            let request = ApiRequest::new(
                Method::PUT,
                "/listings/{id}/calendarIntervals",
                format!("/listings/{listing}/calendarIntervals"),
            )
            .body(body);
            self.call(account, request).await?;
            calls += 1;
        }
        Ok(calls)
    }

    /// The specification's `updateAvailability`: days compressed into maximal
    /// ranges of identical values, sent with `calendarIntervals`.
    pub async fn update_availability(
        &self,
        account: &AccountId,
        listing: &ListingId,
        days: &[AvailabilityUpdate],
    ) -> Result<usize, HostawayError> {
        self.update_calendar_intervals(account, listing, &compress_availability(days))
            .await
    }

    /// The specification's `updatePricing`: prices are in the listing's
    /// currency; days are compressed into ranges of one price.
    pub async fn update_pricing(
        &self,
        account: &AccountId,
        listing: &ListingId,
        days: &[PricingUpdate],
    ) -> Result<usize, HostawayError> {
        let ctx = context(account, "PUT", "/listings/{id}/calendarIntervals");
        let intervals = compress_pricing(days)
            .map_err(|message| HostawayError::new(ErrorKind::Validation, ctx, message))?;
        self.update_calendar_intervals(account, listing, &intervals)
            .await
    }

    // ----- reservations ---------------------------------------------------

    /// One page of reservations (raw records, for `mapping::map_reservation`:
    /// one malformed record does not fail the page).
    pub async fn list_reservations(
        &self,
        account: &AccountId,
        query: &ReservationsQuery,
    ) -> Result<Vec<Map<String, Value>>, HostawayError> {
        let ctx = context(account, "GET", "/reservations");
        let mut request = ApiRequest::new(Method::GET, "/reservations", "/reservations".into())
            .query("limit", query.limit.unwrap_or(100));
        let optional: [(&'static str, Option<String>); 11] = [
            ("afterId", query.after_id.clone()),
            (
                "listingId",
                query.listing_id.as_ref().map(ToString::to_string),
            ),
            ("channelId", query.channel_id.map(|c| c.to_string())),
            ("latestActivityStart", query.latest_activity_start.clone()),
            ("latestActivityEnd", query.latest_activity_end.clone()),
            (
                "arrivalStartDate",
                query.arrival_start.map(|d| d.to_string()),
            ),
            ("arrivalEndDate", query.arrival_end.map(|d| d.to_string())),
            (
                "departureStartDate",
                query.departure_start.map(|d| d.to_string()),
            ),
            (
                "departureEndDate",
                query.departure_end.map(|d| d.to_string()),
            ),
            ("sortOrder", query.sort_order.clone()),
            (
                "includeResources",
                query.include_resources.then(|| "1".to_owned()),
            ),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                request = request.query(key, value);
            }
        }
        records(self.call(account, request).await?, &ctx)
    }

    /// Every reservation matching `query`, following the `afterId` cursor until
    /// a page comes back empty. A cursor that does not advance (Hostaway's order
    /// shifting under it) stops the walk rather than looping.
    pub async fn all_reservations(
        &self,
        account: &AccountId,
        query: &ReservationsQuery,
    ) -> Result<Vec<Map<String, Value>>, HostawayError> {
        let ctx = context(account, "GET", "/reservations");
        let mut query = query.clone();
        let mut all = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let page = self.list_reservations(account, &query).await?;
            let Some(last) = page.last() else {
                return Ok(all);
            };
            let cursor = mapping::json::Record::new(last)
                .id("id", &["id"])
                .map_err(|e| mapping_error(&ctx, e))?
                .set()
                .ok_or_else(|| mapping_error(&ctx, "a reservation without an id"))?;
            let fresh: Vec<_> = page
                .into_iter()
                .filter(|r| {
                    mapping::json::Record::new(r)
                        .id("id", &["id"])
                        .ok()
                        .and_then(domain::Patch::set)
                        .is_none_or(|id| seen.insert(id))
                })
                .collect();
            if fresh.is_empty() || query.after_id.as_deref() == Some(cursor.as_str()) {
                tracing::warn!(account_id = %account, "reservation cursor did not advance; stopping");
                return Ok(all);
            }
            all.extend(fresh);
            query.after_id = Some(cursor);
        }
    }

    /// The specification's `getReservation`.
    pub async fn get_reservation(
        &self,
        account: &AccountId,
        reservation: &ReservationId,
    ) -> Result<Map<String, Value>, HostawayError> {
        let ctx = context(account, "GET", "/reservations/{id}");
        let request = ApiRequest::new(
            Method::GET,
            "/reservations/{id}",
            format!("/reservations/{reservation}"),
        );
        record(self.call(account, request).await?, &ctx)
    }

    /// `PUT /reservations/{id}`. Hostaway refuses (403) changes to a
    /// reservation a channel manages: that is a business-rule error, not retried.
    pub async fn update_reservation(
        &self,
        account: &AccountId,
        reservation: &ReservationId,
        fields: &Map<String, Value>,
    ) -> Result<Map<String, Value>, HostawayError> {
        let ctx = context(account, "PUT", "/reservations/{id}");
        let request = ApiRequest::new(
            Method::PUT,
            "/reservations/{id}",
            format!("/reservations/{reservation}"),
        )
        .body(Value::Object(fields.clone()));
        record(self.call(account, request).await?, &ctx)
    }

    // ----- unified webhooks -----------------------------------------------

    pub async fn list_unified_webhooks(
        &self,
        account: &AccountId,
    ) -> Result<Vec<UnifiedWebhook>, HostawayError> {
        let ctx = context(account, "GET", "/webhooks/unifiedWebhooks");
        let request = ApiRequest::new(
            Method::GET,
            "/webhooks/unifiedWebhooks",
            "/webhooks/unifiedWebhooks".into(),
        );
        records(self.call(account, request).await?, &ctx)?
            .iter()
            .map(|map| mapping::api::parse_unified_webhook(map).map_err(|e| mapping_error(&ctx, e)))
            .collect()
    }

    pub async fn create_unified_webhook(
        &self,
        account: &AccountId,
        webhook: &UnifiedWebhookRequest,
    ) -> Result<UnifiedWebhook, HostawayError> {
        let ctx = context(account, "POST", "/webhooks/unifiedWebhooks");
        let request = ApiRequest::new(
            Method::POST,
            "/webhooks/unifiedWebhooks",
            "/webhooks/unifiedWebhooks".into(),
        )
        .body(webhook.to_json());
        let map = record(self.call(account, request).await?, &ctx)?;
        mapping::api::parse_unified_webhook(&map).map_err(|e| mapping_error(&ctx, e))
    }

    pub async fn update_unified_webhook(
        &self,
        account: &AccountId,
        id: &str,
        webhook: &UnifiedWebhookRequest,
    ) -> Result<UnifiedWebhook, HostawayError> {
        let ctx = context(account, "PUT", "/webhooks/unifiedWebhooks/{id}");
        check_id(id, &ctx)?;
        let request = ApiRequest::new(
            Method::PUT,
            "/webhooks/unifiedWebhooks/{id}",
            format!("/webhooks/unifiedWebhooks/{id}"),
        )
        .body(webhook.to_json());
        let map = record(self.call(account, request).await?, &ctx)?;
        mapping::api::parse_unified_webhook(&map).map_err(|e| mapping_error(&ctx, e))
    }

    pub async fn delete_unified_webhook(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<(), HostawayError> {
        let ctx = context(account, "DELETE", "/webhooks/unifiedWebhooks/{id}");
        check_id(id, &ctx)?;
        let request = ApiRequest::new(
            Method::DELETE,
            "/webhooks/unifiedWebhooks/{id}",
            format!("/webhooks/unifiedWebhooks/{id}"),
        );
        self.call(account, request).await.map(|_| ())
    }
}

fn check_id(id: &str, ctx: &ErrorContext) -> Result<(), HostawayError> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(HostawayError::new(
            ErrorKind::Validation,
            ctx.clone(),
            "an id may only hold letters, digits, '-' and '_'",
        ));
    }
    Ok(())
}

fn check_listing_fields(
    fields: &Map<String, Value>,
    ctx: &ErrorContext,
) -> Result<(), HostawayError> {
    for key in REPLACED_ARRAYS {
        if matches!(fields.get(*key), Some(Value::Array(items)) if items.is_empty()) {
            return Err(HostawayError::new(
                ErrorKind::Validation,
                ctx.clone(),
                format!("`{key}` sent empty would delete all of them; leave it out to keep them"),
            ));
        }
    }
    Ok(())
}

/// Consecutive days with the same availability and stays, as ranges.
pub fn compress_availability(days: &[AvailabilityUpdate]) -> Vec<CalendarInterval> {
    let mut sorted: Vec<&AvailabilityUpdate> = days.iter().collect();
    sorted.sort_by_key(|d| d.date);
    let mut out: Vec<CalendarInterval> = Vec::new();
    for day in sorted {
        let same = |last: &CalendarInterval| {
            last.end_date.succ_opt() == Some(day.date)
                && last.is_available == Some(day.available)
                && last.minimum_stay == day.min_stay
                && last.maximum_stay == day.max_stay
        };
        match out.last_mut() {
            Some(last) if same(last) => last.end_date = day.date,
            _ => {
                let mut interval = CalendarInterval::new(day.date, day.date);
                interval.is_available = Some(day.available);
                interval.minimum_stay = day.min_stay;
                interval.maximum_stay = day.max_stay;
                out.push(interval);
            }
        }
    }
    out
}

/// Consecutive days with the same price, as ranges. All prices must be in one
/// currency (the listing's).
pub fn compress_pricing(days: &[PricingUpdate]) -> Result<Vec<CalendarInterval>, String> {
    let Some(first) = days.first() else {
        return Ok(Vec::new());
    };
    if days.iter().any(|d| d.currency != first.currency) {
        return Err("prices of one listing must share its currency".into());
    }
    if days.iter().any(|d| d.price_minor < 0) {
        return Err("a price is negative".into());
    }
    let exponent = first.currency.minor_exponent();
    let mut sorted: Vec<&PricingUpdate> = days.iter().collect();
    sorted.sort_by_key(|d| d.date);
    let mut out: Vec<(CalendarInterval, i64)> = Vec::new();
    for day in sorted {
        match out.last_mut() {
            Some((last, price))
                if last.end_date.succ_opt() == Some(day.date) && *price == day.price_minor =>
            {
                last.end_date = day.date;
            }
            _ => out.push((
                CalendarInterval::new(day.date, day.date)
                    .with_price_minor(day.price_minor, exponent),
                day.price_minor,
            )),
        }
    }
    Ok(out.into_iter().map(|(interval, _)| interval).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 7, day).unwrap()
    }

    #[test]
    fn availability_compresses_into_maximal_ranges() {
        let day = |n, available| AvailabilityUpdate {
            date: d(n),
            available,
            min_stay: Some(2),
            max_stay: None,
        };
        let ranges = compress_availability(&[
            day(3, false),
            day(1, false),
            day(2, false),
            day(4, true),
            day(6, true),
        ]);
        let spans: Vec<_> = ranges
            .iter()
            .map(|r| (r.start_date, r.end_date, r.is_available))
            .collect();
        assert_eq!(
            spans,
            [
                (d(1), d(3), Some(false)),
                (d(4), d(4), Some(true)),
                (d(6), d(6), Some(true))
            ],
            "a gap or a change of value starts a new range"
        );
    }

    #[test]
    fn pricing_compresses_and_refuses_mixed_currencies() {
        let usd = Currency::parse("USD").unwrap();
        let day = |n, cents| PricingUpdate {
            date: d(n),
            price_minor: cents,
            currency: usd,
        };
        let ranges = compress_pricing(&[day(1, 9999), day(2, 9999), day(3, 12000)]).unwrap();
        assert_eq!(ranges.len(), 2);
        assert_eq!((ranges[0].end_date, ranges[0].price), (d(2), Some(99.99)));
        let eur = PricingUpdate {
            currency: Currency::parse("EUR").unwrap(),
            ..day(4, 1)
        };
        assert!(compress_pricing(&[day(1, 1), eur]).is_err());
    }
}
