#!/usr/bin/env bash
# Import of N follow-up events from CSV into SQLite: `rrct import events` (validation, content
# hashes, idempotency, one transaction, durable commit) against the sqlite3 command line's
# `.import` of the same file into a plain table (the practical limit), in the same run.
# Usage: bash benches/import_vs_sqlite3.sh [N]   (default 1000000; needs sqlite3 and python3)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v sqlite3 >/dev/null || { echo "sqlite3 is not installed (apt-get install sqlite3)" >&2; exit 1; }
cargo build --release --quiet
python3 - "$n" "$work/events.csv" <<'PY'
import random, sys, datetime
n, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(20131030)
# Event types and the sources delivering them, as the shipped protocols (TASTE, DAPA-HF-REG)
# declare them: an import is checked against the registered trials' types and sources.
types = [("death", "population_register"), ("mi", "swedeheart"),
         ("hf_hospitalisation", "swedehf"), ("emigration", "population_register"),
         ("nt_probnp", "laboratory"), ("cv_death", "cause_of_death_register")]
start = datetime.date(2020, 1, 1)
with open(path, "w") as f:
    f.write("event_id,subject,type,date,code,value,source\n")
    for i in range(n):
        t, source = types[rng.randrange(len(types))]
        d = start + datetime.timedelta(days=rng.randrange(1500))
        code = "I21.%d" % rng.randrange(10) if t == "mi" else ""
        value = "%.0f" % (rng.random() * 5000) if t == "nt_probnp" else ""
        f.write("EV%08d,P%07d,%s,%s,%s,%s,%s\n" % (i, rng.randrange(n // 10 + 1), t, d, code, value, source))
PY
# The shipped trials registered (as `rrct serve` does at start), so the events' types are known.
export RRCT_SEED_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
./target/release/rrct serve --database "sqlite://$work/rrct.db" --protocols protocols \
    --bind 127.0.0.1:0 >"$work/serve.log" 2>&1 &
serve=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/serve.log" && break; sleep 0.1; done
kill "$serve"; wait "$serve" || true
grep -q 'listening on' "$work/serve.log" || { cat "$work/serve.log" >&2; exit 1; }
echo "events: $n rows, $(du -h "$work/events.csv" | cut -f1)"
t0=$(date +%s.%N)
./target/release/rrct import events --database "sqlite://$work/rrct.db" "$work/events.csv" >/dev/null
t1=$(date +%s.%N)
sqlite3 "$work/plain.db" -cmd ".mode csv" ".import $work/events.csv events"
t2=$(date +%s.%N)
# A second reference: sqlite3 alone loading the same rows into rrct's own events table (its
# primary key and subject index, loaded row by row), i.e. the database work rrct would do
# without building the index after a large import.
grep -v '^--' migrations/sqlite/0002_events.sql | sqlite3 "$work/schema.db"
# The CSV's rows as the events table's columns (content hash and receipt time made up).
rows="SELECT event_id, subject, type, date, NULLIF(code, ''), NULLIF(value, ''), source, hex(randomblob(32)), '2026-01-01T00:00:00.000000Z'"
t3=$(date +%s.%N)
sqlite3 "$work/schema.db" -cmd ".mode csv" ".import $work/events.csv staging" \
    "INSERT INTO events $rows FROM staging"
t4=$(date +%s.%N)
# A third: sqlite3 alone doing the database work rrct does, in rrct's way: its current events
# table (with the token column) in WAL mode with durable commits, the rows in one transaction,
# the covering subject index dropped before them and built after them, sorting on every core.
# The CSV is parsed into a staging table first, outside the timing, so this is the floor of the
# database work alone; rrct must also parse, check and hash.
sqlite3 "$work/floor.db" -cmd ".mode csv" ".import $work/events.csv staging"
sqlite3 "$work/floor.db" "PRAGMA journal_mode = WAL" >/dev/null
{ grep -v '^--' migrations/sqlite/0002_events.sql
  grep '^ALTER TABLE events' migrations/sqlite/0007_sources.sql
  grep -v '^--' migrations/sqlite/0013_events_covering.sql; } | sqlite3 "$work/floor.db"
index=$(grep '^CREATE INDEX events_subject' migrations/sqlite/0013_events_covering.sql)
t5=$(date +%s.%N)
sqlite3 "$work/floor.db" "PRAGMA synchronous = FULL" "PRAGMA cache_size = -65536" \
    "PRAGMA threads = $(nproc)" "BEGIN" "DROP INDEX events_subject" \
    "INSERT INTO events $rows, NULL FROM staging" \
    "$index" "COMMIT" >/dev/null
t6=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$t6" "$n" <<'PY'
import sys
t0, t1, t2, t3, t4, t5, t6, n = map(float, sys.argv[1:])
rrct, plain, schema, floor = t1 - t0, t2 - t1, t4 - t3, t6 - t5
print(f"rrct import events              : {rrct:.2f} s ({n / rrct:,.0f} rows/s)")
print(f"sqlite3 .import, plain table    : {plain:.2f} s ({n / plain:,.0f} rows/s)")
print(f"sqlite3 into rrct's events table: {schema:.2f} s ({n / schema:,.0f} rows/s)")
print(f"ratio rrct / plain .import      : {rrct / plain:.2f} (target <= 2)")
print(f"sqlite3 doing rrct's database work (rows parsed already; index after, WAL, durable): {floor:.2f} s")
print(f"ratio rrct / same-schema sqlite3: {rrct / schema:.2f}")
print(f"ratio of that floor / plain .import: {floor / plain:.2f}; rrct / that floor: {rrct / floor:.2f}")
PY
