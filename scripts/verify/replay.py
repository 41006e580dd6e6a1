#!/usr/bin/env python3
"""Replay an rrct randomisation log from the revealed master seed, independently of rrct.

A re-implementation of docs/VERIFY.md in the Python standard library alone (ChaCha20 is written
out below; tomllib reads the protocol files, Python 3.11 or later). It takes the enrolments as the
log says the engine judged them (stratum, minimisation levels, eligible arms, cluster), remakes
every draw and checks each allocation's arm, draw kind, block number, size and position and the
decision's detail (probabilities, the uniform draw, scores) against the log. It does not re-judge
eligibility or strata from the fields: `rrct verify replay` does that with the engine's own code.

Usage: replay.py --seed HEX --protocols DIR --allocations FILE   (or --self-test)
Exit status 0 when every allocation agrees, 1 otherwise (the first difference is printed).
"""

import argparse
import hashlib
import json
import os
import struct
import sys
import tomllib

MASK32 = 0xFFFFFFFF
U64_MAX = (1 << 64) - 1


# --- ChaCha20 (D. J. Bernstein's original: 64-bit block counter from 0, 64-bit nonce 0) --------

def _rotl(x, n):
    return ((x << n) & MASK32) | (x >> (32 - n))


def _quarter(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & MASK32; s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & MASK32; s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & MASK32; s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & MASK32; s[b] = _rotl(s[b] ^ s[c], 7)


class ChaCha20:
    """The 32-bit words of the ChaCha20 keystream of a 32-byte key, read as 64-bit numbers."""

    def __init__(self, key):
        self.key = list(struct.unpack("<8I", key))
        self.counter = 0
        self.words = []

    def _block(self):
        state = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574] + self.key + [
            self.counter & MASK32, self.counter >> 32, 0, 0]
        s = list(state)
        for _ in range(10):
            _quarter(s, 0, 4, 8, 12); _quarter(s, 1, 5, 9, 13)
            _quarter(s, 2, 6, 10, 14); _quarter(s, 3, 7, 11, 15)
            _quarter(s, 0, 5, 10, 15); _quarter(s, 1, 6, 11, 12)
            _quarter(s, 2, 7, 8, 13); _quarter(s, 3, 4, 9, 14)
        self.counter += 1
        self.words.extend((x + y) & MASK32 for x, y in zip(s, state))

    def next_u32(self):
        if not self.words:
            self._block()
        return self.words.pop(0)

    def next_u64(self):
        low = self.next_u32()
        return (self.next_u32() << 32) | low


# --- Streams and draws (docs/VERIFY.md, "Streams" and "Draws") -------------------------------

def _length_prefixed(text):
    b = text.encode("utf-8")
    return struct.pack(">Q", len(b)) + b


def stream(seed, trial, stratum, number, purpose=None):
    if purpose is None:
        tag = b"rrct/stream/v1\0"
    else:
        tag = b"rrct/stream/v1/" + _length_prefixed(purpose) + b"\0"
    key = hashlib.sha256(tag + seed + _length_prefixed(trial) + _length_prefixed(stratum)
                         + struct.pack(">Q", number)).digest()
    return ChaCha20(key)


def uniform_below(rng, n):
    zone = U64_MAX - (U64_MAX % n + 1) % n
    while True:
        x = rng.next_u64()
        if x <= zone:
            return x % n


def shuffle(items, rng):
    for i in range(len(items) - 1, 0, -1):
        j = uniform_below(rng, i + 1)
        items[i], items[j] = items[j], items[i]


def weighted_draw(weights, rng):
    x = uniform_below(rng, max(sum(weights), 1))
    for arm, w in enumerate(weights):
        if x < w:
            return arm
        x -= w
    return len(weights) - 1


def unit_draw(rng):
    return (rng.next_u64() >> 11) * (1.0 / (1 << 53))


def select_by_probability(probabilities, u):
    cumulative = 0.0
    for arm, p in enumerate(probabilities):
        cumulative += p
        if p > 0.0 and u < cumulative:
            return arm
    positive = [a for a, p in enumerate(probabilities) if p > 0.0]
    return positive[-1] if positive else 0


def block(ratios, sizes, seed, trial, stratum, number):
    rng = stream(seed, trial, stratum, number)
    size = sizes[uniform_below(rng, len(sizes))]
    multiple = size // max(sum(ratios), 1)
    arms = [arm for arm, r in enumerate(ratios) for _ in range(r * multiple)]
    shuffle(arms, rng)
    return arms


# --- The procedures' probabilities (docs/VERIFY.md, "Decision rules") --------------------------

def coin_probabilities(method, params, counts, eligible):
    only = [a for a, e in enumerate(eligible) if e]
    if len(only) == 1 and method in ("biased_coin", "big_stick"):
        return [1.0 if a == only[0] else 0.0 for a in range(len(eligible))], {
            "forced_by_eligibility": True}
    difference = counts[0] - (counts[1] if len(counts) > 1 else 0)
    if method == "biased_coin":
        p = params["p"]
        probabilities = [0.5, 0.5] if difference == 0 else (
            [1.0 - p, p] if difference > 0 else [p, 1.0 - p])
        return probabilities, {"difference": difference, "p": p}
    if method == "big_stick":
        bound = params["max_imbalance"]
        probabilities = [0.0, 1.0] if difference >= bound else (
            [1.0, 0.0] if difference <= -bound else [0.5, 0.5])
        return probabilities, {"difference": difference, "max_imbalance": bound}
    alpha, beta = params["alpha"], params["beta"]
    total = sum(counts)
    balls = [alpha + beta * (total - n) if e else 0 for n, e in zip(counts, eligible)]
    in_urn = sum(balls)
    if in_urn == 0:
        probabilities = [1.0 / len(only) if e else 0.0 for e in eligible]
    else:
        probabilities = [b / in_urn for b in balls]
    return probabilities, {"balls": balls, "alpha": alpha, "beta": beta}


def _spread_with_one_more(values, arms, j, delta, measure):
    k = len(arms)
    mean = sum(values[a] for a in arms) / k
    if measure == "range":
        others = [values[a] for a in arms if a != j]
        xj = values[j] + delta
        return max([xj] + others) - min([xj] + others)
    ss0 = 0.0
    for a in arms:
        ss0 += (values[a] - mean) * (values[a] - mean)
    cross = 2.0 * delta * (values[j] - mean)
    square = delta * delta * (1.0 - 1.0 / k)
    ss = ss0 + cross + square
    if ss <= 1e-9 * (ss0 + abs(cross) + square):
        ss = 0.0
    variance = ss / (k - 1.0)
    return variance ** 0.5 if measure == "sd" else variance


def minimisation_probabilities(params, ratios, allocated, marginals, eligible):
    p, initial = params["p"], params["initial_random"]
    arms = [a for a, e in enumerate(eligible) if e]

    def weights(chosen, mass):
        total = float(sum(ratios[a] for a in arms if chosen(a)))
        return [mass * ratios[a] / total if eligible[a] and chosen(a) and total > 0.0 else 0.0
                for a in range(len(ratios))]

    if allocated < initial or len(arms) == 1:
        phase = "forced_by_eligibility" if len(arms) == 1 else "initial_random"
        return weights(lambda a: True, 1.0), {"phase": phase, "initial_random": initial, "p": p}
    scores = [0.0] * len(ratios)
    for f, factor in enumerate(params["factors"]):
        values = [n / r for n, r in zip(marginals[f], ratios)]
        for j in arms:
            scores[j] += factor["weight"] * _spread_with_one_more(
                values, arms, j, 1.0 / ratios[j], params["measure"])
    best = min(scores[a] for a in arms)
    tolerance = 1e-9 * max(abs(best), 1.0)
    preferred = [a for a in arms if scores[a] - best <= tolerance]
    if len(preferred) == len(arms):
        probabilities = weights(lambda a: True, 1.0)
    else:
        probabilities = weights(lambda a: a in preferred, p)
        others = weights(lambda a: a not in preferred, 1.0 - p)
        probabilities = [x + y for x, y in zip(probabilities, others)]
    return probabilities, {"phase": "minimisation", "measure": params["measure"], "p": p,
                           "scores": [scores[a] if eligible[a] else None
                                      for a in range(len(ratios))],
                           "preferred": preferred}


# --- Protocols --------------------------------------------------------------------------------

def load_protocols(directory, trial):
    """version -> (sha256, arms, method, params) of every protocol file of `trial`."""
    found = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".toml"):
            continue
        raw = open(os.path.join(directory, name), "rb").read()
        doc = tomllib.loads(raw.decode("utf-8"))
        if doc.get("id") != trial:
            continue
        r = doc["randomisation"]
        method = r["method"]
        params = {
            "block_sizes": r.get("block_sizes"),
            "p": float(r["p"]) if "p" in r else None,
            "initial_random": r.get("initial_random", 0),
            "measure": r.get("measure", "range"),
            "factors": [{"field": f["field"], "weight": float(f.get("weight", 1.0))}
                        for f in r.get("factors", [])],
            "max_imbalance": r.get("max_imbalance"),
            "alpha": r.get("alpha"), "beta": r.get("beta"),
        }
        arms = [{"id": a["id"], "ratio": a.get("ratio", 1), "closed": a.get("closed", False)}
                for a in doc["arms"]]
        found[str(doc["version"])] = (hashlib.sha256(raw).hexdigest(), arms, method, params, name)
    return found


# --- The replay -------------------------------------------------------------------------------

def replay(log, seed, protocols):
    problems = []
    if hashlib.sha256(seed).hexdigest() != log["seed_commitment"]:
        problems.append("the seed does not hash to the trial's commitment")
    for v in log["protocol_versions"]:
        if v["version"] not in protocols:
            problems.append(f"no protocol file of version {v['version']}")
        elif protocols[v["version"]][0] != v["source_sha256"]:
            problems.append(f"{protocols[v['version']][4]}: SHA-256 differs from version "
                            f"{v['version']} as registered")
    if problems:
        return problems, 0
    trial = log["trial_id"]
    states = {}          # stratum -> [block_number, position, allocated]
    arm_counts = {}      # (stratum, arm id) -> n
    marginals = {}       # (factor, level, arm id) -> n
    clusters = {}        # cluster -> arm id
    marks = sorted(((a["randomised_in_error"]["applies_from"],
                     a["randomised_in_error"]["audit_seq"], a)
                    for a in log["allocations"] if a.get("randomised_in_error")),
                   key=lambda m: (m[0], m[1]))

    def release(marked):
        for r in marked["randomised_in_error"]["released"]:
            marginals[(r["factor"], r["level"], r["arm"])] -= 1

    agreed = 0
    for number, a in enumerate(log["allocations"], start=1):
        while marks and marks[0][0] <= number:
            release(marks.pop(0)[2])
        _, arm_list, method, params, _ = protocols[a["protocol_version"]]
        ids = [arm["id"] for arm in arm_list]
        ratios = [arm["ratio"] for arm in arm_list]
        inp = a["input"]
        stratum = inp["stratum"]
        eligible = ([i in inp["eligible_arms"] for i in ids] if inp["eligible_arms"] is not None
                    else [True] * len(ids))
        restricted = not all(eligible)
        state = states.get(stratum, [0, 0, 0])
        levels = [inp["minimisation_levels"][f["field"]] for f in params["factors"]]
        cluster = inp["cluster"]
        detail, kind = None, "slot"
        if cluster is not None and cluster in clusters:
            arm = ids.index(clusters[cluster])
            kind = "inherited"
            got = (arm, state[2], 1, 0)
            detail = {"cluster": "inherited", "arm": arm}
            if restricted:
                detail["eligible_arms"] = eligible
            new_state = state
        elif method == "simple":
            rng = stream(seed, trial, stratum, state[2])
            weights = [r if e else 0 for r, e in zip(ratios, eligible)]
            arm = weighted_draw(weights, rng)
            if restricted:
                detail = {"procedure": "simple", "eligible_arms": eligible, "weights": weights}
            got = (arm, state[2], 1, 0)
            new_state = [0, 0, state[2] + 1]
        elif method == "permuted_blocks" and restricted:
            rng = stream(seed, trial, stratum, state[2], purpose="restricted")
            weights = [r if e else 0 for r, e in zip(ratios, eligible)]
            arm = weighted_draw(weights, rng)
            kind = "restricted"
            detail = {"procedure": "permuted_blocks", "restricted_draw": True,
                      "eligible_arms": eligible, "weights": weights}
            got = (arm, state[0], 1, 0)
            new_state = [state[0], state[1], state[2] + 1]
        elif method == "permuted_blocks":
            number_, position = state[0], state[1]
            arms = block(ratios, params["block_sizes"], seed, trial, stratum, number_)
            if position >= len(arms):
                number_, position = number_ + 1, 0
                arms = block(ratios, params["block_sizes"], seed, trial, stratum, number_)
            arm = arms[position]
            got = (arm, number_, len(arms), position)
            new_state = [number_, position + 1, state[2] + 1]
        else:
            rng = stream(seed, trial, stratum, state[2])
            u = unit_draw(rng)
            if method == "minimisation":
                m = [[marginals.get((f["field"], level, i), 0) for i in ids]
                     for f, level in zip(params["factors"], levels)]
                probabilities, detail = minimisation_probabilities(
                    params, ratios, state[2], m, eligible)
            else:
                counts = [arm_counts.get((stratum, i), 0) for i in ids]
                probabilities, detail = coin_probabilities(method, params, counts, eligible)
            arm = select_by_probability(probabilities, u)
            detail.update({"procedure": method, "probabilities": probabilities, "draw": u})
            if restricted:
                detail["eligible_arms"] = eligible
            got = (arm, state[2], 1, 0)
            new_state = [0, 0, state[2] + 1]
        d = a["draw"]
        logged = (ids.index(a["arm"]) if a["arm"] in ids else -1, d["block_number"],
                  d["block_size"], d["block_position"])
        logged_detail = json.loads(d["detail"]) if d["detail"] is not None else None
        if got != logged or kind != d["kind"] or detail != logged_detail:
            return [f"allocation {number} (record {a['record_id']}) differs: logged arm "
                    f"{a['arm']}, kind {d['kind']}, block {logged[1:]}, detail {logged_detail}; "
                    f"replayed arm {ids[got[0]]}, kind {kind}, block {got[1:]}, detail {detail}"
                    ], agreed
        states[stratum] = new_state
        if kind != "inherited":
            arm_id = ids[got[0]]
            if method in ("biased_coin", "big_stick", "urn"):
                arm_counts[(stratum, arm_id)] = arm_counts.get((stratum, arm_id), 0) + 1
            for f, level in zip(params["factors"], levels):
                key = (f["field"], level, arm_id)
                marginals[key] = marginals.get(key, 0) + 1
            if cluster is not None:
                clusters[cluster] = arm_id
        agreed += 1
    return [], agreed


def self_test():
    """The test vectors of docs/VERIFY.md."""
    seed = bytes(range(32))
    got = {"commitment": hashlib.sha256(seed).hexdigest()}
    s = stream(seed, "taste", "site=UPP;sex=F", 0)
    got["stream0"] = ["%016x" % s.next_u64() for _ in range(3)]
    got["restricted7"] = "%016x" % stream(seed, "taste", "site=UPP;sex=F", 7,
                                          purpose="restricted").next_u64()
    s = stream(seed, "taste", "all", 3)
    got["uniform6"] = [uniform_below(s, 6) for _ in range(5)]
    got["unit"] = unit_draw(stream(seed, "taste", "all", 4))
    items = list(range(8))
    shuffle(items, stream(seed, "taste", "all", 5))
    got["shuffle8"] = items
    got["blocks"] = [block([1, 1], [2, 4, 6], seed, "taste", "site=UPP;sex=F", b) for b in range(3)]
    got["block21"] = block([2, 1], [3, 6], seed, "taste", "site=LKP;sex=M", 0)
    want = {
        "commitment": "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd",
        "stream0": ["692bc738077bbb71", "6561ac197ef36a58", "5e44a97a215d9da5"],
        "restricted7": "718bc4ef0d27409b",
        "uniform6": [2, 5, 5, 3, 2],
        "unit": 0.28451981075989485,
        "shuffle8": [4, 3, 0, 5, 2, 1, 7, 6],
        "blocks": [[0, 1, 0, 1, 0, 1], [0, 1], [0, 0, 1, 1, 0, 1]],
        "block21": [0, 0, 1, 0, 1, 0],
    }
    wrong = [k for k in want if got[k] != want[k]]
    for k in wrong:
        print(f"test vector {k}: got {got[k]}, expected {want[k]}")
    if not wrong:
        print("ok: the test vectors of docs/VERIFY.md hold")
    return 1 if wrong else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--self-test", action="store_true",
                        help="check the test vectors of docs/VERIFY.md and exit")
    parser.add_argument("--seed")
    parser.add_argument("--protocols")
    parser.add_argument("--allocations")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    if not (args.seed and args.protocols and args.allocations):
        parser.error("--seed, --protocols and --allocations are required")
    log = json.load(open(args.allocations, encoding="utf-8"))
    if log.get("format") != "rrct-allocation-log/1":
        print(f"not an rrct allocation log: format {log.get('format')!r}")
        return 1
    seed = bytes.fromhex(args.seed.strip())
    problems, agreed = replay(log, seed, load_protocols(args.protocols, log["trial_id"]))
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"ok: {agreed} allocations of trial {log['trial_id']} replayed identically")
    return 0


if __name__ == "__main__":
    sys.exit(main())
