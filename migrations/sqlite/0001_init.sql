-- rrct schema, SQLite dialect. Append-only: never edit a migration once applied; add a new one.
-- Timestamps are UTC RFC 3339 text with microseconds (lexicographic order = time order), the
-- same representation as on PostgreSQL so both backends share every query.

CREATE TABLE trials (
    trial_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    current_version TEXT NOT NULL,
    seed_commitment TEXT NOT NULL,
    next_randomisation_number BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);

-- The master seed never leaves this table through any interface.
CREATE TABLE trial_secrets (
    trial_id TEXT PRIMARY KEY REFERENCES trials (trial_id),
    master_seed BLOB NOT NULL
);

CREATE TABLE protocol_versions (
    trial_id TEXT NOT NULL REFERENCES trials (trial_id),
    version TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    source TEXT NOT NULL,
    loaded_at TEXT NOT NULL,
    PRIMARY KEY (trial_id, version)
);

CREATE TABLE sites (
    trial_id TEXT NOT NULL REFERENCES trials (trial_id),
    site_code TEXT NOT NULL,
    name TEXT,
    PRIMARY KEY (trial_id, site_code)
);

CREATE TABLE strata (
    trial_id TEXT NOT NULL REFERENCES trials (trial_id),
    stratum TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    position BIGINT NOT NULL,
    allocated BIGINT NOT NULL,
    PRIMARY KEY (trial_id, stratum)
);

CREATE TABLE allocations (
    trial_id TEXT NOT NULL REFERENCES trials (trial_id),
    randomisation_number BIGINT NOT NULL,
    record_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    site_code TEXT NOT NULL,
    arm TEXT NOT NULL,
    stratum TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    block_size BIGINT NOT NULL,
    block_position BIGINT NOT NULL,
    protocol_version TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    allocated_at TEXT NOT NULL,
    PRIMARY KEY (trial_id, randomisation_number),
    UNIQUE (trial_id, record_id),
    UNIQUE (trial_id, subject),
    -- A block slot is handed out once. trial_id comes last so that, before statistics exist,
    -- the planner is not tempted to answer `trial_id = ?` lookups through this index.
    UNIQUE (stratum, block_number, block_position, trial_id)
);

CREATE TABLE screening_log (
    screening_id INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id TEXT NOT NULL REFERENCES trials (trial_id),
    record_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    site_code TEXT NOT NULL,
    -- not_randomised: eligible, reported by the register as not randomised (reason in reasons).
    outcome TEXT NOT NULL CHECK (outcome IN ('randomised', 'not_eligible', 'not_randomised')),
    reasons TEXT NOT NULL,
    fields TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    protocol_version TEXT NOT NULL,
    randomisation_number BIGINT,
    screened_at TEXT NOT NULL
);
CREATE INDEX screening_log_record ON screening_log (trial_id, record_id);

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    trial_id TEXT,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- The chain head: one row, locked by every append so entries form a single sequence.
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    trial_id TEXT,
    site_code TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
