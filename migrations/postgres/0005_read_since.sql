-- Reading only what was written since a previous read (the dashboards keep a trial's data in
-- memory and add the new rows after each write). Every write transaction holds the writer
-- lock, so values drawn from a sequence inside one are increasing in commit order: a reader
-- that saw events up to seq N sees every later event with seq > N. Rows already stored are
-- numbered in no particular order, all before the first new one.
ALTER TABLE events ADD COLUMN seq BIGSERIAL;
CREATE UNIQUE INDEX events_seq ON events (seq);
CREATE INDEX screening_log_trial ON screening_log (trial_id, screening_id);
