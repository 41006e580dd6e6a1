-- Consent as data (issue 22). Each randomised enrolment's consent as the register recorded it
-- (kind, who took it, when), written with the allocation in the enrolment's transaction; a
-- deferred consent is confirmed later in place (confirmed_*), with an audit entry.
CREATE TABLE enrolment_consents (
    trial_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    randomisation_number BIGINT NOT NULL,
    kind TEXT NOT NULL,
    taken_by TEXT,
    taken_at TEXT,
    confirmed_kind TEXT,
    confirmed_by TEXT,
    confirmed_at TEXT,
    confirmed_recorded_by TEXT,
    confirmed_recorded_at TEXT,
    PRIMARY KEY (trial_id, record_id)
);
CREATE INDEX enrolment_consents_number ON enrolment_consents (trial_id, randomisation_number);

-- Withdrawals: append-only, one row per (record, scope); the allocation is never touched.
-- Scopes: no_further_contact, no_further_data_collection, data_use_withdrawn.
CREATE TABLE withdrawals (
    trial_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    withdrawn_on TEXT NOT NULL,
    reason TEXT,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (trial_id, record_id, scope),
    FOREIGN KEY (trial_id, record_id) REFERENCES allocations (trial_id, record_id)
);

-- The objection (opt-out) list of a trial: subjects, in the canonical id form, who must never
-- be randomised in it.
CREATE TABLE objections (
    trial_id TEXT NOT NULL REFERENCES trials (trial_id),
    subject TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (trial_id, subject)
);

-- A withdrawal and a deferred consent's confirmation are told to others too.
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
                WHEN 'withdrawal_recorded' THEN 'rrct.enrolment.withdrawn'
                WHEN 'consent_confirmed' THEN 'rrct.consent.confirmed'
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
                                  'site_enrolment_changed', 'withdrawal_recorded', 'consent_confirmed'))
EXECUTE FUNCTION audit_log_to_outbox();
