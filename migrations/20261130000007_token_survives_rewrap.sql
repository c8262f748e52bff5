-- A stored token names the API key it was minted with (key_fingerprint), and
-- replicas use it only while the account's key is that key. The trigger no
-- longer deletes it: a master-key rewrap (new ciphertext, same key) keeps
-- the account's token; a new key makes replicas mint one (and replace it).
CREATE OR REPLACE FUNCTION notify_api_key_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hostaway_api_key_changed', NEW.hostaway_account_id);
    RETURN NULL;
END
$$;
