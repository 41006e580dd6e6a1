-- The outbox: what rrct tells others (the register's record, the trial office, a pharmacy, a
-- monitoring system). A trigger on the audit log adds one row for every change others are told
-- of, so the row is written in the same transaction as the change on every write path, and its
-- id is the audit entry's sequence number (commit order). The event itself is built from the
-- audit entry when published, blinded as the trial's masking says.
CREATE TABLE outbox (
    outbox_id BIGINT PRIMARY KEY,
    trial_id TEXT,
    event_type TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    published_at TEXT
);
CREATE INDEX outbox_unpublished ON outbox (published_at, outbox_id);

CREATE FUNCTION audit_log_to_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (outbox_id, trial_id, event_type, recorded_at)
    VALUES (NEW.seq, NEW.trial_id,
            CASE NEW.action
                WHEN 'randomised' THEN 'rrct.allocation.created'
                WHEN 'screened_not_eligible' THEN 'rrct.screening.recorded'
                WHEN 'screened_not_randomised' THEN 'rrct.screening.recorded'
                WHEN 'randomised_in_error_marked' THEN 'rrct.allocation.marked_in_error'
                WHEN 'trial_status_changed' THEN 'rrct.trial.status_changed'
                ELSE 'rrct.source.stale'
            END,
            NEW.recorded_at);
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_log_to_outbox AFTER INSERT ON audit_log
FOR EACH ROW WHEN (NEW.action IN ('randomised', 'screened_not_eligible', 'screened_not_randomised',
                                  'randomised_in_error_marked', 'trial_status_changed', 'source_stale'))
EXECUTE FUNCTION audit_log_to_outbox();

-- CloudEvents received (HTTP or the bus): the (source, id) pair is the idempotency key within
-- the sender's scope (role, trial, site, source: one sender's key is never answered or blocked for
-- another), the content hash tells a replay from a conflicting reuse, and the answer given is
-- kept so that a replay gets the same one.
CREATE TABLE inbound_events (
    scope TEXT NOT NULL,
    ce_source TEXT NOT NULL,
    ce_id TEXT NOT NULL,
    ce_type TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    status BIGINT NOT NULL,
    answer TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (scope, ce_source, ce_id)
);
