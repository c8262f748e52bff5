-- Hostaway accounts (the specification's `channels`) and the links between
-- Hostaway listings and TVL units.

CREATE TABLE channels (
    id                          uuid PRIMARY KEY,
    channel_type                text NOT NULL DEFAULT 'hostaway' CHECK (channel_type = 'hostaway'),
    -- Hostaway's account id (the OAuth client id). In clear: webhooks are routed by it.
    hostaway_account_id         text NOT NULL UNIQUE,
    display_name                text,
    -- The unified webhook's Basic login. Not a secret; the password is.
    webhook_login               text UNIQUE,
    -- Encrypted fields only (AES-256-GCM, see store::crypto):
    --   encrypted_api_key, encrypted_webhook_password, encrypted_webhook_secret,
    --   and their *_previous twins during a rotation.
    credentials                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- After this instant the *_previous secrets are no longer accepted.
    previous_secrets_expire_at  timestamptz,
    enabled                     boolean NOT NULL DEFAULT true,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

-- The gateway keeps credentials in memory and reloads them when told.
CREATE FUNCTION notify_channels_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hostaway_channels_changed', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER channels_changed
    AFTER INSERT OR UPDATE OR DELETE ON channels
    FOR EACH STATEMENT EXECUTE FUNCTION notify_channels_changed();

CREATE TABLE listing_links (
    hostaway_account_id  text NOT NULL REFERENCES channels (hostaway_account_id) ON UPDATE CASCADE,
    hostaway_listing_id  text NOT NULL,
    unit_id              uuid NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hostaway_account_id, hostaway_listing_id)
);

CREATE INDEX listing_links_unit ON listing_links (unit_id);
