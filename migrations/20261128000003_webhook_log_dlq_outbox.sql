-- What happened to each webhook, what could not be processed, and the events
-- waiting to be published.

CREATE TABLE webhook_log (
    webhook_id           text PRIMARY KEY,
    hostaway_account_id  text NOT NULL,
    event                text NOT NULL,
    object_id            text,
    source               text NOT NULL,
    received_at          timestamptz NOT NULL,
    status               text NOT NULL
                         CHECK (status IN ('processing', 'processed', 'retrying', 'failed', 'dead_lettered')),
    -- created, updated, cancelled, unchanged, stale, duplicate, forwarded
    outcome              text,
    booking_id           uuid,
    -- Failed attempts of this webhook (not counting infrastructure outages).
    attempts             integer NOT NULL DEFAULT 0,
    -- Times the webhook reached the ingestor (Hostaway repeats, redeliveries).
    deliveries           integer NOT NULL DEFAULT 1,
    error                text,
    first_seen_at        timestamptz NOT NULL DEFAULT now(),
    processed_at         timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_log_unfinished ON webhook_log (updated_at) WHERE status <> 'processed';
CREATE INDEX webhook_log_account_received ON webhook_log (hostaway_account_id, received_at);

-- The specification's dead-letter queue, mirrored on the DLQ stream.
CREATE TABLE dead_letter_queue (
    id               uuid PRIMARY KEY,
    -- The webhook id.
    job_id           text NOT NULL,
    -- e.g. "webhook:reservation.updated".
    job_name         text NOT NULL,
    -- What an operator needs to read: account, event, object id, subject, times.
    data             jsonb NOT NULL,
    -- The original message (protobuf InboundWebhook), replayed as is.
    payload          bytea NOT NULL,
    failed_at        timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL,
    -- {"kind": "...", "message": "..."}
    error            jsonb NOT NULL,
    stream_sequence  bigint,
    replayed_at      timestamptz,
    replay_count     integer NOT NULL DEFAULT 0,
    resolved_at      timestamptz
);

CREATE INDEX dead_letter_queue_open ON dead_letter_queue (failed_at) WHERE resolved_at IS NULL;
CREATE INDEX dead_letter_queue_job ON dead_letter_queue (job_id);

-- Events written in the same transaction as the state they describe, then
-- published; a crash between commit and publish loses nothing.
CREATE TABLE outbox (
    -- The event id, also the Nats-Msg-Id.
    id              uuid PRIMARY KEY,
    -- Subject below the namespace's events prefix, e.g. "booking.created".
    subject_suffix  text NOT NULL,
    payload         bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);

CREATE INDEX outbox_unpublished ON outbox (created_at) WHERE published_at IS NULL;
