//! An account's listings at Hostaway, their links to TVL units, and units
//! suggested for the unlinked ones.

use std::collections::{BTreeSet, HashMap};

use domain::{AccountId, UnitId};
use mapping::api::Listing;
use serde_json::json;
use store::links::{ListingLabel, UnitLabel};
use tonic::Status;

use crate::convert::{account as parse_account, hostaway_status, listing, store_status, unit};
use crate::proto;
use crate::service::{Context, Detail};

/// Suggestions shown per unlinked listing, at most.
const SUGGESTIONS: usize = 3;
/// Below this similarity a unit is not suggested.
const THRESHOLD: f64 = 0.5;

fn address(listing: &Listing) -> Option<String> {
    listing
        .raw
        .get("address")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .filter(|a| !a.trim().is_empty())
}

/// Keeps what Hostaway calls each listing (for suggestions), its currency
/// and its units.
pub(crate) async fn remember(
    ctx: &Context,
    account: &AccountId,
    listings: &[Listing],
) -> Result<(), Status> {
    let labels: Vec<ListingLabel> = listings
        .iter()
        .map(|l| ListingLabel {
            listing: l.id.clone(),
            name: l.name.clone(),
            address: address(l),
        })
        .collect();
    store::links::remember_labels(&ctx.pool, account, &labels)
        .await
        .map_err(store_status)?;
    // Their currency and units too: the dispatchers' first push of each
    // need not read them again.
    let reads: Vec<_> = listings
        .iter()
        .map(sync_dispatcher::worker::listing_read)
        .collect();
    store::remote::record_listing_reads(&ctx.pool, account.as_str(), &reads)
        .await
        .map_err(store_status)
}

/// Lower-case words of letters and digits.
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Shared words, twice, over the words of both (Sørensen-Dice): a copy
/// named "Garden cottage (Booking.com copy)" still resembles "Garden cottage".
fn similarity(a: &str, b: &str) -> f64 {
    let (a, b) = (words(a), words(b));
    let total = a.len() + b.len();
    if total == 0 {
        return 0.0;
    }
    2.0 * a.intersection(&b).count() as f64 / total as f64
}

/// The units most like a listing: by name (shared words, against the name
/// TVL gave the unit or a linked listing's name), or by address (the same
/// words: a house number differing is another house). The best reason per
/// unit.
fn suggest(listing: &Listing, labels: &[UnitLabel]) -> Vec<proto::UnitSuggestion> {
    let mut best: HashMap<UnitId, (f64, String)> = HashMap::new();
    let name = listing.name.clone();
    let address = address(listing);
    for label in labels {
        let (what, score) = match (label.source, &name, &address) {
            ("listing address", _, Some(address)) => (
                "address",
                if words(address) == words(&label.text) {
                    1.0
                } else {
                    0.0
                },
            ),
            ("tvl name" | "listing name", Some(name), _) => ("name", similarity(name, &label.text)),
            _ => continue,
        };
        if score < THRESHOLD {
            continue;
        }
        let reason = format!(
            "{what} matches the unit's {} {:?}",
            label.source, label.text
        );
        let entry = best.entry(label.unit).or_insert((0.0, String::new()));
        if score > entry.0 {
            *entry = (score, reason);
        }
    }
    let mut ranked: Vec<_> = best.into_iter().collect();
    ranked.sort_by(|a, b| b.1.0.total_cmp(&a.1.0).then(a.0.cmp(&b.0)));
    ranked
        .into_iter()
        .take(SUGGESTIONS)
        .map(|(unit, (score, reason))| proto::UnitSuggestion {
            unit_id: unit.to_string(),
            reason,
            score,
        })
        .collect()
}

pub async fn list(
    ctx: &Context,
    req: proto::ListListingsRequest,
) -> Result<(proto::ListListingsResponse, Detail), Status> {
    let account = parse_account(&req.account_id)?;
    crate::accounts::require(ctx, &account).await?;
    let listings = ctx
        .hostaway
        .all_listings(&account)
        .await
        .map_err(hostaway_status)?;
    remember(ctx, &account, &listings).await?;
    let links: HashMap<String, UnitId> = store::links::list(&ctx.pool, Some(&account))
        .await
        .map_err(store_status)?
        .into_iter()
        .map(|link| (link.listing.to_string(), link.unit))
        .collect();
    let labels = if listings.iter().any(|l| !links.contains_key(l.id.as_str())) {
        store::links::unit_labels(&ctx.pool)
            .await
            .map_err(store_status)?
    } else {
        Vec::new()
    };
    let listings = listings
        .iter()
        .map(|l| {
            let linked = links.get(l.id.as_str());
            proto::Listing {
                account_id: account.to_string(),
                listing_id: l.id.to_string(),
                name: l.name.clone().unwrap_or_default(),
                address: address(l).unwrap_or_default(),
                unit_id: linked.map(ToString::to_string).unwrap_or_default(),
                suggestions: if linked.is_some() {
                    Vec::new()
                } else {
                    suggest(l, &labels)
                },
            }
        })
        .collect();
    Ok((proto::ListListingsResponse { listings }, Detail::Null))
}

pub async fn link(
    ctx: &Context,
    req: proto::LinkListingRequest,
) -> Result<(proto::Listing, Detail), Status> {
    let account = parse_account(&req.account_id)?;
    let listing_id = listing(&req.listing_id)?;
    let unit_id = unit(&req.unit_id)?;
    store::links::link(&ctx.pool, &account, &listing_id, unit_id)
        .await
        .map_err(store_status)?;
    let response = proto::Listing {
        account_id: account.to_string(),
        listing_id: listing_id.to_string(),
        unit_id: unit_id.to_string(),
        ..Default::default()
    };
    Ok((
        response,
        json!({"listingId": listing_id.as_str(), "unitId": unit_id.to_string()}),
    ))
}

pub async fn unlink(
    ctx: &Context,
    req: proto::UnlinkListingRequest,
) -> Result<(proto::UnlinkListingResponse, Detail), Status> {
    let account = parse_account(&req.account_id)?;
    let listing_id = listing(&req.listing_id)?;
    let removed = store::links::unlink(&ctx.pool, &account, &listing_id)
        .await
        .map_err(store_status)?;
    Ok((
        proto::UnlinkListingResponse { removed },
        json!({"listingId": listing_id.as_str(), "removed": removed}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(name: &str, address: &str) -> Listing {
        let raw = json!({"id": 1, "name": name, "address": address});
        mapping::api::parse_listing(raw.as_object().unwrap()).unwrap()
    }

    #[test]
    fn units_are_suggested_by_name_or_address_best_first() {
        let (a, b, c) = (
            UnitId::from_uuid(uuid::Uuid::from_u128(1)),
            UnitId::from_uuid(uuid::Uuid::from_u128(2)),
            UnitId::from_uuid(uuid::Uuid::from_u128(3)),
        );
        let labels = vec![
            UnitLabel {
                unit: a,
                source: "tvl name",
                text: "Sea View Loft".into(),
            },
            UnitLabel {
                unit: b,
                source: "listing address",
                text: "12 Harbour Road, Brighton".into(),
            },
            UnitLabel {
                unit: c,
                source: "tvl name",
                text: "Mountain Cabin".into(),
            },
        ];
        let found = suggest(
            &listing("Sea view loft (2BR)", "12 Harbour Road, Brighton"),
            &labels,
        );
        let units: Vec<_> = found.iter().map(|s| s.unit_id.clone()).collect();
        assert_eq!(units, [b.to_string(), a.to_string()]);
        assert!(found[0].reason.contains("address"));
        assert!(suggest(&listing("Beach House", "1 Main St"), &labels).is_empty());
    }
}
