-- Each trial's rows as a server last held them, saved so that a server starting again reads
-- only the rows written since instead of the whole trial. A copy of what the tables hold,
-- never a source of truth: it is taken only when `head_hash` is still the audit chain's hash at
-- entry `head` (the rows were read at that head) and `format` is the reading server's own;
-- otherwise the trial is read afresh. Not audited, as no row of the trial changes.
CREATE TABLE trial_snapshots (
    trial_id TEXT PRIMARY KEY,
    head BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    format TEXT NOT NULL,
    body TEXT NOT NULL,
    saved_at TEXT NOT NULL
);
