-- The trial's lifecycle while it runs, apart from its protocol's `status` (the plan as written
-- and amended): `trials.lifecycle` is what the trial's admins decided (active, paused, or
-- closed for good) and `sites.enrolment` whether a site may enrol (open or closed). An
-- enrolment needs both the protocol's `recruiting` and the lifecycle's `active`, at an open
-- site. Every change is one row of `lifecycle_changes`, keyed by the sequence number of its
-- audit entry (written in the same transaction), so the pages show the history without
-- scanning the audit log.
ALTER TABLE trials ADD COLUMN lifecycle TEXT NOT NULL DEFAULT 'active';
ALTER TABLE sites ADD COLUMN enrolment TEXT NOT NULL DEFAULT 'open';

CREATE TABLE lifecycle_changes (
    seq BIGINT PRIMARY KEY,
    trial_id TEXT NOT NULL REFERENCES trials (trial_id),
    site_code TEXT,
    change TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
CREATE INDEX lifecycle_changes_trial ON lifecycle_changes (trial_id, seq);

-- Emergency unblindings of one subject each: who (the token and the person named), when, why.
-- An unblinding changes nothing else; its audit entry has the same sequence number.
CREATE TABLE unblindings (
    seq BIGINT PRIMARY KEY,
    trial_id TEXT NOT NULL REFERENCES trials (trial_id),
    record_id TEXT NOT NULL,
    randomisation_number BIGINT NOT NULL,
    person TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    unblinded_at TEXT NOT NULL
);
CREATE INDEX unblindings_trial ON unblindings (trial_id, seq);

-- A site's enrolment opened or closed is told to others too.
CREATE OR REPLACE FUNCTION audit_log_to_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (outbox_id, trial_id, event_type, recorded_at)
    VALUES (NEW.seq, NEW.trial_id,
            CASE NEW.action
                WHEN 'randomised' THEN 'rrct.allocation.created'
                WHEN 'screened_not_eligible' THEN 'rrct.screening.recorded'
                WHEN 'screened_not_randomised' THEN 'rrct.screening.recorded'
                WHEN 'randomised_in_error_marked' THEN 'rrct.allocation.marked_in_error'
                WHEN 'trial_status_changed' THEN 'rrct.trial.status_changed'
                WHEN 'site_enrolment_changed' THEN 'rrct.site.enrolment_changed'
                ELSE 'rrct.source.stale'
            END,
            NEW.recorded_at);
    RETURN NEW;
END;
$$;
DROP TRIGGER audit_log_to_outbox ON audit_log;
CREATE TRIGGER audit_log_to_outbox AFTER INSERT ON audit_log
FOR EACH ROW WHEN (NEW.action IN ('randomised', 'screened_not_eligible', 'screened_not_randomised',
                                  'randomised_in_error_marked', 'trial_status_changed', 'source_stale',
                                  'site_enrolment_changed'))
EXECUTE FUNCTION audit_log_to_outbox();
