-- Registers as sources. Each stored event keeps the source it is attributed to (`source`: for
-- a `source` token, the source the token is bound to) and the token that delivered it
-- (`token_id`; NULL for an operator's file import). A `source` token names its source.
-- Every accepted delivery of a source is recorded, also one without events (a register saying
-- "nothing new"), so a source that stops delivering is noticed rather than read as "no events".
ALTER TABLE events ADD COLUMN token_id TEXT;
ALTER TABLE tokens ADD COLUMN source_id TEXT;
CREATE TABLE source_deliveries (
    delivery_id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    received_at TEXT NOT NULL,
    token_id TEXT,
    events_received BIGINT NOT NULL,
    events_stored BIGINT NOT NULL
);
CREATE INDEX source_deliveries_source ON source_deliveries (source, received_at);
