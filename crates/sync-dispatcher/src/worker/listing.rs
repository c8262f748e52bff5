//! Listing details: the fields TVL owns, pushed when they drift.

use domain::{ListingId, UnitId};
use serde_json::{Map, Value, json};
use store::remote::ListingRef;

use super::{Calls, JobError, JobRunner, Report};
use crate::plan;
use crate::queue::{Job, Mode};

impl JobRunner {
    /// Pushes the listing's details that differ from what Hostaway has
    /// (read back first in reconciliation).
    pub(super) async fn listing(
        &self,
        job: &Job,
        listing: &ListingId,
        unit: UnitId,
        calls: &mut Calls<'_>,
    ) -> Result<Report, JobError> {
        let account = &job.key.account;
        let at = ListingRef::of(account, listing);
        let mut conn = self.pool.acquire().await?;
        let desired = store::desired::listing(&mut conn, unit, at.account, at.listing).await?;
        drop(conn);
        if job.mode == Mode::Reconcile {
            let answer = self.client.get_listing(account, listing).await;
            calls.count(&answer);
            let read = answer.map_err(|e| JobError::api(e, json!({"reading": "listing"})))?;
            let shown: Vec<(String, Option<Value>)> = desired
                .iter()
                .map(|f| (f.field.clone(), read.raw.get(&f.field).cloned()))
                .collect();
            store::remote::record_read_listing(
                &self.pool,
                at.account,
                &super::calendar::listing_read(&read),
                &shown,
            )
            .await?;
        }
        let mut conn = self.pool.acquire().await?;
        let fields = store::desired::listing(&mut conn, unit, at.account, at.listing).await?;
        drop(conn);
        let drift = plan::listing_drift(&fields);
        if drift.is_empty() {
            return Ok(Report::default());
        }
        if job.mode == Mode::Reconcile {
            self.metrics
                .drift
                .with_label_values(&["listing"])
                .inc_by(drift.len() as u64);
        }
        let body: Map<String, Value> = drift.iter().cloned().collect();
        let answer = self.client.update_listing(account, listing, &body).await;
        calls.count(&answer);
        answer.map_err(|e| JobError::api(e, json!({"unitId": unit.to_string(), "fields": drift.iter().map(|(f, _)| f).collect::<Vec<_>>()})))?;
        store::remote::record_pushed_listing(&self.pool, at, &drift).await?;
        self.metrics
            .ranges_pushed
            .with_label_values(&["listing"])
            .inc();
        Ok(Report { ranges: 1 })
    }
}
