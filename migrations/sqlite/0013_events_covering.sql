-- The subject index carries every column a trial's read of its events takes (a covering
-- index): the read of a trial's events, ordered by subject, then finds each subject's events
-- in the index alone instead of looking each row up in the table (which is in arrival order).
DROP INDEX events_subject;
CREATE INDEX events_subject ON events (subject, event_date, event_id, event_type, code, value, source, recorded_at);
