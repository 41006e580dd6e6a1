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
-- Only slots must be unique, so the slot constraint becomes a partial index.
ALTER TABLE allocations ADD COLUMN detail TEXT;
ALTER TABLE allocations ADD COLUMN eligible_arms TEXT;
ALTER TABLE allocations ADD COLUMN cluster TEXT;
ALTER TABLE allocations ADD COLUMN draw TEXT NOT NULL DEFAULT 'slot'
    CHECK (draw IN ('slot', 'restricted', 'inherited'));
ALTER TABLE allocations DROP CONSTRAINT allocations_stratum_block_number_block_position_trial_id_key;
-- trial_id last, as before: the planner must not answer `trial_id = ?` through this index.
CREATE UNIQUE INDEX allocations_slot ON allocations (stratum, block_number, block_position, trial_id)
WHERE draw = 'slot';
