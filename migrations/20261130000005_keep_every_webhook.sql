-- Nothing Hostaway sends is lost: webhooks that wait (for their reservation's
-- complete record, their listing's link, their account) are parked here
-- rather than held by JetStream; reservation fetches asked for by the
-- ingestor; finer versions; API-key changes reach running dispatchers.

-- Two updates within one `updatedOn` second are ordered by
-- `latestActivityOn`, then an API read wins over a webhook payload
-- (domain::Version). Existing rows: no activity stamp, a webhook's origin.
ALTER TABLE bookings
    ADD COLUMN version_latest_activity timestamp,
    ADD COLUMN version_origin smallint NOT NULL DEFAULT 0;

ALTER TABLE webhook_log DROP CONSTRAINT webhook_log_status_check;
ALTER TABLE webhook_log ADD CONSTRAINT webhook_log_status_check
    CHECK (status IN ('processing', 'processed', 'retrying', 'parked', 'failed', 'dead_lettered'));
ALTER TABLE webhook_log
    -- What the mapping cut or left out to keep the booking (field and rule,
    -- never a value), e.g. "`guestName` truncated to 500 characters".
    ADD COLUMN adjustments text,
    -- Statement or lock timeouts met so far: free at first, then counted as
    -- attempts, so a webhook that always times out reaches the DLQ.
    ADD COLUMN timeouts integer NOT NULL DEFAULT 0;

-- A webhook that cannot be applied yet but will be once something else
-- happens. Released (published again) when due, or at once when what it
-- waits for happens: its reservation's booking is created, its listing is
-- linked, its account is enabled.
CREATE TABLE parked_webhooks (
    webhook_id           text PRIMARY KEY,
    hostaway_account_id  text NOT NULL,
    reason               text NOT NULL
                         CHECK (reason IN ('incomplete_payload', 'listing_not_linked', 'account_disabled')),
    reservation_id       text,
    listing_id           text,
    event                text NOT NULL,
    -- Where and what to publish when released (protobuf InboundWebhook).
    subject              text NOT NULL,
    payload              bytea NOT NULL,
    -- Releases so far that found it still waiting.
    retries              integer NOT NULL DEFAULT 0,
    parked_at            timestamptz NOT NULL DEFAULT now(),
    -- NULL: waits only for what it waits for (an account to be enabled).
    due_at               timestamptz,
    -- A releaser's claim; an expired claim is released again.
    claimed_until        timestamptz,
    last_error           text NOT NULL DEFAULT ''
);

CREATE INDEX parked_webhooks_due ON parked_webhooks (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX parked_webhooks_reservation ON parked_webhooks (hostaway_account_id, reservation_id);
CREATE INDEX parked_webhooks_listing ON parked_webhooks (hostaway_account_id, listing_id);

-- Reservations whose complete record the ingestor asked the dispatcher to
-- fetch (`GET /reservations/{id}`), because a webhook of theirs was
-- incomplete. Served by the account's reservation polling job.
CREATE TABLE reservation_fetches (
    hostaway_account_id  text NOT NULL,
    reservation_id       text NOT NULL,
    requested_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hostaway_account_id, reservation_id)
);

-- `hostaway-admin events replay --since` pages through bookings by change.
CREATE INDEX bookings_updated ON bookings (updated_at, id);

-- Resolved dead letters are purged after a retention.
CREATE INDEX dead_letter_queue_resolved ON dead_letter_queue (resolved_at)
    WHERE resolved_at IS NOT NULL;

-- Dead letters of a listing not linked yet are found by their listing.
CREATE INDEX dead_letter_queue_open_kind ON dead_letter_queue ((error->>'kind'))
    WHERE resolved_at IS NULL;

-- A rotated API key must evict the token minted with the old one in every
-- running dispatcher. One notification per account whose key changed (the
-- payload is the account id); a master-key rewrap notifies too, and the
-- dispatcher keeps its token when the decrypted key is the same.
CREATE FUNCTION notify_api_key_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hostaway_api_key_changed', NEW.hostaway_account_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER api_key_changed
    AFTER UPDATE ON channels
    FOR EACH ROW
    WHEN (OLD.credentials->'encrypted_api_key' IS DISTINCT FROM NEW.credentials->'encrypted_api_key')
    EXECUTE FUNCTION notify_api_key_changed();
