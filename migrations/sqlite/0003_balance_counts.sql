-- What the adaptive procedures balance, kept current with every allocation so that a decision
-- reads O(factors × arms) rows and never scans the allocation history (docs/DESIGN.md,
-- "Counts the adaptive procedures keep"). Arms are stored by id, not by index, so counts stay
-- attached to the right arm when a protocol amendment adds or closes arms.

-- Per stratum and arm: allocations so far (biased coin, big stick, urn). In a cluster trial
-- the unit is the cluster: only the enrolment that randomises a cluster counts.
CREATE TABLE arm_counts (
    trial_id TEXT NOT NULL REFERENCES trials (trial_id),
    stratum TEXT NOT NULL,
    arm TEXT NOT NULL,
    n BIGINT NOT NULL CHECK (n >= 0),
    PRIMARY KEY (trial_id, stratum, arm)
);

-- Trial-wide per minimisation factor, level and arm: the randomised units counting towards
-- balance (allocations marked randomised in error are taken out again).
CREATE TABLE marginal_counts (
    trial_id TEXT NOT NULL REFERENCES trials (trial_id),
    factor TEXT NOT NULL,
    level TEXT NOT NULL,
    arm TEXT NOT NULL,
    n BIGINT NOT NULL CHECK (n >= 0),
    PRIMARY KEY (trial_id, factor, level, arm)
);

-- Cluster randomisation: each cluster's arm, set by the enrolment that randomised it.
CREATE TABLE clusters (
    trial_id TEXT NOT NULL REFERENCES trials (trial_id),
    cluster TEXT NOT NULL,
    arm TEXT NOT NULL,
    stratum TEXT NOT NULL,
    randomisation_number BIGINT NOT NULL,
    PRIMARY KEY (trial_id, cluster)
);

-- Allocations gain the decision's audit detail (JSON), the arms the patient was eligible for
-- (JSON array of arm ids, only when restricted), the cluster, and what the allocation took
-- from its stratum's sequence (`draw`):
--   slot       a block slot or sequence number, unique within the stratum;
--   restricted a restricted patient's draw beside the block (permuted blocks), no slot taken;
--   inherited  a cluster member given its cluster's arm, no draw.
-- Only slots must be unique, so the slot constraint becomes a partial index. SQLite cannot
-- drop a table constraint: the table is rebuilt (nothing references it).
CREATE TABLE allocations_v3 (
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
    detail TEXT,
    eligible_arms TEXT,
    cluster TEXT,
    draw TEXT NOT NULL DEFAULT 'slot' CHECK (draw IN ('slot', 'restricted', 'inherited')),
    PRIMARY KEY (trial_id, randomisation_number),
    UNIQUE (trial_id, record_id),
    UNIQUE (trial_id, subject)
);
INSERT INTO allocations_v3 (trial_id, randomisation_number, record_id, subject, site_code, arm,
    stratum, block_number, block_size, block_position, protocol_version, request_sha256,
    allocated_at)
SELECT trial_id, randomisation_number, record_id, subject, site_code, arm, stratum,
    block_number, block_size, block_position, protocol_version, request_sha256, allocated_at
FROM allocations;
DROP TABLE allocations;
ALTER TABLE allocations_v3 RENAME TO allocations;
-- trial_id last, as before: the planner must not answer `trial_id = ?` through this index.
CREATE UNIQUE INDEX allocations_slot ON allocations (stratum, block_number, block_position, trial_id)
WHERE draw = 'slot';
