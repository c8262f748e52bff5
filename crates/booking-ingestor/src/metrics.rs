//! The ingestor's metrics, named after the specification's
//! (`hostaway.webhooks.processed`, `hostaway.webhooks.processing_duration`).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};
use service_kit::metrics::{LATENCY_BUCKETS, Metrics};

#[derive(Debug, Clone)]
pub struct IngestorMetrics {
    /// `status` is `success` or `failure` (a failure is retried or dead-lettered).
    pub processed: IntCounterVec,
    pub processing_duration: HistogramVec,
    /// created, updated, cancelled, unchanged, stale, duplicate, repeat, forwarded.
    pub outcomes: IntCounterVec,
    /// From the gateway's receipt to the committed transaction.
    pub end_to_end: Histogram,
    /// Webhooks applied in one transaction.
    pub batch_size: Histogram,
    /// Reconciliations queued for listings Hostaway said changed, by kind.
    pub reconciliations_requested: IntCounterVec,
    pub retries: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    pub double_bookings: IntCounter,
    /// Calendar blocks `created`, `moved` or `released`.
    pub blocks_changed: IntCounterVec,
    pub dlq_open: IntGauge,
    pub events_published: IntCounterVec,
    pub outbox_pending: IntGauge,
    pub database_available: IntGauge,
    /// Webhooks parked to wait, by reason.
    pub parked: IntCounterVec,
    /// Parked webhooks now, by reason.
    pub parked_now: IntGaugeVec,
    /// Parked webhooks published again (their retry fell due, or what they
    /// waited for happened).
    pub released: IntCounter,
    /// Fields the mapping cut or left out, by field and action.
    pub adjustments: IntCounterVec,
    /// Open dead letters by kind of error.
    pub dlq_open_by_kind: IntGaugeVec,
    /// Reservation fetches asked of the dispatcher.
    pub fetches_requested: IntCounter,
}

impl IngestorMetrics {
    pub fn register(metrics: &Metrics) -> anyhow::Result<Self> {
        Ok(Self {
            processed: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_webhooks_processed_total",
                    "Webhooks processed, by event type and status",
                ),
                &["event_type", "status"],
            )?)?,
            processing_duration: metrics.register(HistogramVec::new(
                HistogramOpts::new(
                    "hostaway_webhooks_processing_duration_seconds",
                    "Time to apply one webhook (transaction included)",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["event_type"],
            )?)?,
            outcomes: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_ingest_outcomes_total",
                    "What each processed webhook did",
                ),
                &["outcome"],
            )?)?,
            end_to_end: metrics.register(Histogram::with_opts(
                HistogramOpts::new(
                    "hostaway_webhook_end_to_end_seconds",
                    "From the gateway's receipt of a webhook to its committed effect",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?)?,
            batch_size: metrics.register(Histogram::with_opts(
                HistogramOpts::new(
                    "hostaway_ingest_batch_webhooks",
                    "Webhooks pulled together and applied in one transaction",
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            )?)?,
            reconciliations_requested: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_ingest_reconciliations_requested_total",
                    "Reconciliations queued because a listing or calendar webhook said the listing changed, by kind",
                ),
                &["kind"],
            )?)?,
            retries: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_ingest_retries_total",
                    "Webhooks sent back for a later attempt, by reason",
                ),
                &["reason"],
            )?)?,
            dead_lettered: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_dlq_messages_total",
                    "Webhooks moved to the dead-letter queue, by reason",
                ),
                &["reason"],
            )?)?,
            double_bookings: metrics.register(IntCounter::new(
                "hostaway_double_bookings_total",
                "Overlapping live bookings detected on one unit",
            )?)?,
            blocks_changed: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_blocks_changed_total",
                    "Calendar blocks created, moved or released",
                ),
                &["change"],
            )?)?,
            dlq_open: metrics.register(IntGauge::new(
                "hostaway_dlq_open",
                "Dead letters not yet resolved",
            )?)?,
            events_published: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_events_published_total",
                    "Events published for TVL, by subject",
                ),
                &["subject"],
            )?)?,
            outbox_pending: metrics.register(IntGauge::new(
                "hostaway_outbox_pending",
                "Events committed but not yet published",
            )?)?,
            database_available: metrics.register(IntGauge::new(
                "hostaway_ingestor_database_available",
                "1 when PostgreSQL answers, 0 while consumption is paused for it",
            )?)?,
            parked: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_webhooks_parked_total",
                    "Webhooks parked to wait for their reservation, their listing's link or their account, by reason",
                ),
                &["reason"],
            )?)?,
            parked_now: metrics.register(IntGaugeVec::new(
                Opts::new("hostaway_webhooks_parked", "Webhooks parked now, by reason"),
                &["reason"],
            )?)?,
            released: metrics.register(IntCounter::new(
                "hostaway_webhooks_released_total",
                "Parked webhooks published again",
            )?)?,
            adjustments: metrics.register(IntCounterVec::new(
                Opts::new(
                    "hostaway_mapping_adjustments_total",
                    "Fields cut or left out so that a record could be applied, by field and action",
                ),
                &["field", "action"],
            )?)?,
            dlq_open_by_kind: metrics.register(IntGaugeVec::new(
                Opts::new(
                    "hostaway_dlq_open_by_kind",
                    "Dead letters not yet resolved, by kind of error",
                ),
                &["kind"],
            )?)?,
            fetches_requested: metrics.register(IntCounter::new(
                "hostaway_reservation_fetches_requested_total",
                "Reservations whose complete record was asked of the API because a webhook was incomplete",
            )?)?,
        })
    }
}
