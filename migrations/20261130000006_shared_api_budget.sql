-- What every replica of the sync dispatcher shares about Hostaway's API:
-- the request budgets (20 requests per 10 s per account, 15 per 10 s per
-- egress IP, whatever the number of replicas), the accounts' circuits, and
-- one access token per account.

-- One row per request taken from a budget: scope 'a' (an account) or 'e' (an
-- egress identity), and when. Rows older than two windows are deleted as new
-- ones are taken.
CREATE TABLE api_budget_calls (
    scope  char(1) NOT NULL CHECK (scope IN ('a', 'e')),
    key    text NOT NULL,
    at     timestamptz NOT NULL
);
CREATE INDEX api_budget_calls_window ON api_budget_calls (scope, key, at);

-- An account's circuit, open for every replica until `open_until`.
CREATE TABLE api_circuits (
    hostaway_account_id  text PRIMARY KEY,
    open_until           timestamptz NOT NULL,
    opened_at            timestamptz NOT NULL DEFAULT now()
);

-- Takes one request from the account's and the egress's budgets, both or
-- neither, under a lock per budget (egress first, then account, always: no
-- deadlock). Returns how long (ms) each budget needs before it has room (zero:
-- it had, and the request was taken), and how long the account's circuit
-- stays open if it is (then nothing is taken). The database's clock is every
-- replica's clock.
CREATE FUNCTION take_api_budget(
    p_account text, p_egress text,
    p_account_limit integer, p_egress_limit integer, p_window interval)
RETURNS TABLE (account_wait_ms bigint, egress_wait_ms bigint, circuit_open_ms bigint)
LANGUAGE plpgsql AS $$
DECLARE
    now_ts timestamptz := clock_timestamp();
    a_wait interval := interval '0';
    e_wait interval := interval '0';
    open_until timestamptz;
    nth timestamptz;
BEGIN
    SELECT c.open_until INTO open_until FROM api_circuits c
    WHERE c.hostaway_account_id = p_account AND c.open_until > now_ts;
    IF open_until IS NOT NULL THEN
        RETURN QUERY SELECT 0::bigint, 0::bigint,
                            ceil(extract(epoch FROM open_until - now_ts) * 1000)::bigint;
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('api-budget:e:' || p_egress, 0));
    PERFORM pg_advisory_xact_lock(hashtextextended('api-budget:a:' || p_account, 0));
    now_ts := clock_timestamp();
    -- The limit-th most recent request inside the window: once it leaves the
    -- window, there is room for one more.
    SELECT b.at INTO nth FROM api_budget_calls b
    WHERE b.scope = 'a' AND b.key = p_account AND b.at > now_ts - p_window
    ORDER BY b.at DESC OFFSET greatest(p_account_limit, 1) - 1 LIMIT 1;
    IF nth IS NOT NULL THEN a_wait := nth + p_window - now_ts; END IF;
    nth := NULL;
    SELECT b.at INTO nth FROM api_budget_calls b
    WHERE b.scope = 'e' AND b.key = p_egress AND b.at > now_ts - p_window
    ORDER BY b.at DESC OFFSET greatest(p_egress_limit, 1) - 1 LIMIT 1;
    IF nth IS NOT NULL THEN e_wait := nth + p_window - now_ts; END IF;
    IF a_wait <= interval '0' AND e_wait <= interval '0' THEN
        INSERT INTO api_budget_calls (scope, key, at)
        VALUES ('a', p_account, now_ts), ('e', p_egress, now_ts);
        DELETE FROM api_budget_calls
        WHERE scope = 'a' AND key = p_account AND at < now_ts - p_window * 2;
        DELETE FROM api_budget_calls
        WHERE scope = 'e' AND key = p_egress AND at < now_ts - p_window * 2;
    END IF;
    RETURN QUERY SELECT ceil(extract(epoch FROM greatest(a_wait, interval '0')) * 1000)::bigint,
                        ceil(extract(epoch FROM greatest(e_wait, interval '0')) * 1000)::bigint,
                        NULL::bigint;
END
$$;

-- One access token per account, shared by the replicas: encrypted like the
-- account's other credentials (AES-256-GCM, see store::crypto), with when it
-- may be used and when to replace it, and the fingerprints (SHA-256) of the
-- key it was minted with and of itself (to forget exactly the token Hostaway
-- refused).
CREATE TABLE api_tokens (
    hostaway_account_id  text PRIMARY KEY REFERENCES channels (hostaway_account_id)
                         ON UPDATE CASCADE ON DELETE CASCADE,
    encrypted_token      text NOT NULL,
    token_fingerprint    bytea NOT NULL,
    key_fingerprint      bytea,
    usable_from          timestamptz NOT NULL,
    refresh_at           timestamptz NOT NULL,
    minted_at            timestamptz NOT NULL DEFAULT now()
);

-- A changed API key also forgets the token stored for the account.
CREATE OR REPLACE FUNCTION notify_api_key_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM api_tokens WHERE hostaway_account_id = NEW.hostaway_account_id;
    PERFORM pg_notify('hostaway_api_key_changed', NEW.hostaway_account_id);
    RETURN NULL;
END
$$;

-- A reconciliation slot is complete once its jobs are queued; a slot claimed
-- and never completed (its replica died) is taken over after a timeout.
ALTER TABLE reconcile_slots ADD COLUMN completed_at timestamptz;
