-- The operations API (issue 12): who may call it, what they did, each
-- account's own settings, and how old each credential is.

-- Bearer tokens of the operations API. Only the SHA-256 of a token is kept
-- (tokens are 256 random bits: a plain hash is enough, and lets a call find
-- its token in one indexed lookup).
CREATE TABLE admin_tokens (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('owner', 'operator', 'viewer')),
    token_sha256  bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);

-- Every mutating call, and every call refused for its role: who, what, when,
-- the outcome. `detail` holds identifiers and settings, never a secret.
CREATE TABLE admin_audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    token_id    uuid REFERENCES admin_tokens (id),
    actor       text NOT NULL,
    role        text NOT NULL,
    method      text NOT NULL,
    account_id  text,
    outcome     text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX admin_audit_at ON admin_audit (at);
CREATE INDEX admin_audit_account ON admin_audit (account_id, at);

-- The specification's HostawayChannelConfig, per account, every version kept.
-- The highest version is in force; an account without a row runs on the
-- services' defaults.
CREATE TABLE channel_configs (
    hostaway_account_id  text NOT NULL REFERENCES channels (hostaway_account_id) ON UPDATE CASCADE ON DELETE CASCADE,
    version              integer NOT NULL CHECK (version > 0),
    config               jsonb NOT NULL,
    set_at               timestamptz NOT NULL DEFAULT now(),
    set_by               text NOT NULL,
    PRIMARY KEY (hostaway_account_id, version)
);

-- When each credential was last set (the specification rotates every 90
-- days). Existing credentials count from the row's last change.
ALTER TABLE channels
    ADD COLUMN api_key_set_at           timestamptz,
    ADD COLUMN webhook_password_set_at  timestamptz,
    ADD COLUMN webhook_secret_set_at    timestamptz;
UPDATE channels SET
    api_key_set_at = CASE WHEN credentials ? 'encrypted_api_key' THEN updated_at END,
    webhook_password_set_at = CASE WHEN credentials ? 'encrypted_webhook_password' THEN updated_at END,
    webhook_secret_set_at = CASE WHEN credentials ? 'encrypted_webhook_secret' THEN updated_at END;

-- What Hostaway last said each listing is called and where it is, as read
-- by the operations API: to suggest a TVL unit for an unlinked listing.
CREATE TABLE hostaway_listings (
    hostaway_account_id  text NOT NULL REFERENCES channels (hostaway_account_id) ON UPDATE CASCADE ON DELETE CASCADE,
    hostaway_listing_id  text NOT NULL,
    name                 text,
    address              text,
    fetched_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hostaway_account_id, hostaway_listing_id)
);

-- Multi-unit listings are opened and closed with desiredUnitsToSell, not
-- isAvailable: the number of units of each listing, learnt with its currency
-- (NULL: not read yet; 0: an ordinary listing).
ALTER TABLE remote_listings ADD COLUMN units integer;
