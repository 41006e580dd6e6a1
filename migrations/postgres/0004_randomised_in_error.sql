-- Allocations an admin marked "randomised in error" (Yelland et al., the ITT way): the
-- allocation itself stays, in the data and in the audit chain; this row only records that it
-- was an error, why, by whom and when. A record is marked at most once and never unmarked.
CREATE TABLE allocation_errors (
    trial_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    marked_by TEXT NOT NULL,
    marked_at TEXT NOT NULL,
    PRIMARY KEY (trial_id, record_id),
    FOREIGN KEY (trial_id, record_id) REFERENCES allocations (trial_id, record_id)
);
