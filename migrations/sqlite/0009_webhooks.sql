-- Webhooks: HTTP endpoints that receive a trial's outbox records as signed CloudEvents
-- (Standard Webhooks), in outbox order, at least once.
--
-- The signing secret is stored sealed under the server's seed key (XChaCha20-Poly1305, with
-- the webhook's id, trial, URL and types as associated data, so a row altered to send
-- elsewhere no longer opens), and erased when the webhook is removed. `event_types` is a JSON
-- array of outbound types, or NULL for every type.
CREATE TABLE webhooks (
    webhook_id TEXT PRIMARY KEY,
    trial_id TEXT NOT NULL REFERENCES trials (trial_id),
    url TEXT NOT NULL,
    sealed_secret BLOB NOT NULL,
    event_types TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    removed_at TEXT,
    removed_by TEXT
);
CREATE INDEX webhooks_trial ON webhooks (trial_id);

-- Each webhook's delivery state. `delivered_through` is the outbox id up to which the webhook
-- has its records (each delivered, or passed over by its type filter); the next record is the
-- first after it, retried until it is acknowledged, never skipped. `attempts` counts the failed
-- attempts at that next record; no attempt is made before `next_attempt_at`. The lease
-- (`lease_owner` until `lease_until`) lets one delivery worker at a time, of all the servers
-- sharing the database, deliver a webhook, which keeps its order across servers.
CREATE TABLE webhook_deliveries (
    webhook_id TEXT PRIMARY KEY REFERENCES webhooks (webhook_id),
    delivered_through BIGINT NOT NULL,
    delivered BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_attempt_at TEXT,
    last_delivered_at TEXT,
    last_error TEXT,
    lease_owner TEXT,
    lease_until TEXT
);

-- A trial's outbox records in order, for the webhooks of that trial.
CREATE INDEX outbox_trial ON outbox (trial_id, outbox_id);
