-- Outbound sync: what TVL wants each unit's calendar and listing to be
-- (desired_*), what the connector knows Hostaway has (remote_*), and the
-- bookkeeping of the sync jobs and the reconciliation schedules.
--
-- Stamps order changes: 8 bytes of occurred_at (microseconds since the epoch,
-- big-endian), 8 bytes of the publisher's version, then the change id. bytea
-- compares byte by byte, so the larger stamp is the newer change, and equal
-- stamps mean the same change: last writer wins per field, whatever order
-- changes arrive in.

CREATE TABLE desired_calendar (
    unit_id          uuid NOT NULL,
    day              date NOT NULL,
    available        boolean,
    available_stamp  bytea,
    min_stay         integer,
    min_stay_stamp   bytea,
    max_stay         integer,
    max_stay_stamp   bytea,
    -- Nightly price: integer minor units of currency; both or neither.
    price_minor      bigint CHECK (price_minor >= 0),
    currency         char(3),
    price_stamp      bytea,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (unit_id, day),
    CHECK ((price_minor IS NULL) = (currency IS NULL))
);

-- Listing details, one row per field: value is the JSON Hostaway takes for it.
CREATE TABLE desired_listing (
    unit_id     uuid NOT NULL,
    field       text NOT NULL,
    value       jsonb NOT NULL,
    stamp       bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (unit_id, field)
);

-- Bumped whenever a unit's desired state of a kind changes: a worker that read
-- revision r and finds r+1 after it finished knows to run again.
CREATE TABLE desired_revisions (
    unit_id     uuid NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('availability', 'pricing', 'listing')),
    revision    bigint NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (unit_id, kind)
);

-- What Hostaway has for a listing's day, as far as the connector knows: set
-- when Hostaway accepted a push, and overwritten by what reconciliation reads.
-- NULL: unknown (never pushed nor read).
CREATE TABLE remote_calendar (
    hostaway_account_id  text NOT NULL,
    hostaway_listing_id  text NOT NULL,
    day                  date NOT NULL,
    available            boolean,
    min_stay             integer,
    max_stay             integer,
    price_minor          bigint,
    -- Reserved (or pending) on Hostaway: a guest holds the night; its
    -- availability is Hostaway's, never pushed.
    reserved             boolean NOT NULL DEFAULT false,
    pushed_at            timestamptz,
    read_at              timestamptz,
    PRIMARY KEY (hostaway_account_id, hostaway_listing_id, day)
);

CREATE TABLE remote_listing (
    hostaway_account_id  text NOT NULL,
    hostaway_listing_id  text NOT NULL,
    field                text NOT NULL,
    value                jsonb,
    pushed_at            timestamptz,
    read_at              timestamptz,
    PRIMARY KEY (hostaway_account_id, hostaway_listing_id, field)
);

-- Facts about a Hostaway listing the sync needs: the currency its calendar
-- prices are in, and when its calendar was last read.
CREATE TABLE remote_listings (
    hostaway_account_id  text NOT NULL,
    hostaway_listing_id  text NOT NULL,
    currency             char(3),
    listing_read_at      timestamptz,
    calendar_read_at     timestamptz,
    PRIMARY KEY (hostaway_account_id, hostaway_listing_id)
);

-- One row per (account, listing, kind) that ever had a job: the lease that
-- keeps two workers off the same listing, and the attempts of its failures.
-- For reservation polling, hostaway_listing_id is '' (the job is per account).
CREATE TABLE sync_jobs (
    hostaway_account_id  text NOT NULL,
    hostaway_listing_id  text NOT NULL,
    kind                 text NOT NULL
                         CHECK (kind IN ('availability', 'pricing', 'listing', 'reservations')),
    lease_holder         uuid,
    lease_until          timestamptz,
    -- Failed attempts since the last success (infrastructure outages and an
    -- open circuit do not count).
    attempts             integer NOT NULL DEFAULT 0,
    last_error           text,
    last_success_at      timestamptz,
    calls                bigint NOT NULL DEFAULT 0,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hostaway_account_id, hostaway_listing_id, kind)
);

-- The slot of each reconciliation schedule last claimed: of many replicas,
-- the one that advances it runs that slot.
CREATE TABLE reconcile_slots (
    schedule    text PRIMARY KEY,
    last_slot   timestamptz NOT NULL,
    -- Runs claimed before: picks the slice of listings a run covers.
    runs        bigint NOT NULL DEFAULT 0,
    claimed_by  uuid,
    claimed_at  timestamptz NOT NULL DEFAULT now()
);

-- Reservation polling: per account, the latest `updatedOn` seen (Hostaway's
-- `Y-m-d H:i:s` text, UTC).
CREATE TABLE reservation_poll_cursors (
    hostaway_account_id  text PRIMARY KEY REFERENCES channels (hostaway_account_id) ON UPDATE CASCADE ON DELETE CASCADE,
    cursor               text NOT NULL,
    polled_at            timestamptz NOT NULL DEFAULT now(),
    reservations_seen    bigint NOT NULL DEFAULT 0
);
