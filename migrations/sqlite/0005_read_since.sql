-- Reading only what was written since a previous read (the dashboards keep a trial's data in
-- memory and add the new rows after each write). On SQLite an event's rowid numbers it:
-- writers hold the single write lock, events are never deleted, and a new row's rowid is one
-- more than the largest, so rowids increase in commit order. PostgreSQL adds a seq column.
CREATE INDEX screening_log_trial ON screening_log (trial_id, screening_id);
