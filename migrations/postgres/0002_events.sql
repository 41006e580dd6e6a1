-- Follow-up events from the registers (deaths, infarctions, readmissions, emigrations, lab
-- values). Kept whether or not the subject is, or ever will be, in a trial: a subject may be
-- enrolled later, and earlier events are history. Idempotent by event_id; content_sha256 tells
-- a replay from a conflicting resubmission. recorded_at is when rrct received the event, which
-- decides what a data cut-off can see.
CREATE TABLE events (
    event_id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_date TEXT NOT NULL,
    code TEXT,
    value DOUBLE PRECISION,
    source TEXT,
    content_sha256 TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX events_subject ON events (subject, event_date);
