-- Bookings created from Hostaway reservations, and the calendar blocks they hold.

CREATE TABLE bookings (
    id                      uuid PRIMARY KEY,
    external_source         text NOT NULL,
    external_id             text NOT NULL,
    hostaway_account_id     text NOT NULL,
    hostaway_listing_id     text NOT NULL,
    unit_id                 uuid NOT NULL,
    status                  text NOT NULL,
    arrival_date            date NOT NULL,
    departure_date          date NOT NULL,
    nights                  integer GENERATED ALWAYS AS (departure_date - arrival_date) STORED,
    guest_name              text,
    guest_first_name        text,
    guest_last_name         text,
    guest_email             text,
    guest_phone             text,
    number_of_guests        integer,
    adults                  integer,
    children                integer,
    infants                 integer,
    pets                    integer,
    -- Money: integer minor units of `currency`; both or neither.
    total_amount_minor      bigint CHECK (total_amount_minor >= 0),
    currency                char(3),
    channel_id              bigint,
    channel_name            text,
    channel_reservation_id  text,
    confirmation_code       text,
    cancelled_by            text,
    cancelled_at            timestamp,
    -- The version of the payload this state comes from (domain::Version).
    source_updated_at       timestamp,
    version_terminal        boolean NOT NULL,
    version_event           smallint NOT NULL,
    version_digest          bytea NOT NULL,
    -- Bumped on every change: events carry it so consumers can order them.
    revision                bigint NOT NULL DEFAULT 1,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    -- Per account: one Hostaway account can never reach another's bookings,
    -- whatever reservation id it sends.
    UNIQUE (external_source, hostaway_account_id, external_id),
    CHECK (departure_date >= arrival_date),
    CHECK ((total_amount_minor IS NULL) = (currency IS NULL))
);

CREATE INDEX bookings_unit_arrival ON bookings (unit_id, arrival_date);

-- One live block per booking that holds nights; a released block is deleted.
-- Nights are [start_date, end_date): the departure day is free.
CREATE TABLE availability_blocks (
    booking_id  uuid PRIMARY KEY REFERENCES bookings (id) ON DELETE CASCADE,
    unit_id     uuid NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('booking', 'owner_stay')),
    start_date  date NOT NULL,
    end_date    date NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (end_date > start_date)
);

CREATE INDEX availability_blocks_unit_dates ON availability_blocks (unit_id, start_date, end_date);

-- Two live blocks overlapping on one unit. Both bookings are kept; this records
-- the conflict for a human. A pair is reported once until it is resolved.
CREATE TABLE double_bookings (
    id             uuid PRIMARY KEY,
    unit_id        uuid NOT NULL,
    booking_a      uuid NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    booking_b      uuid NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    overlap_start  date NOT NULL,
    overlap_end    date NOT NULL,
    detected_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz,
    CHECK (booking_a < booking_b),
    UNIQUE (booking_a, booking_b)
);

CREATE INDEX double_bookings_open ON double_bookings (unit_id) WHERE resolved_at IS NULL;
