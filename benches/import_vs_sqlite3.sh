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
types = ["death", "mi", "readmission", "emigration", "ldl"]
start = datetime.date(2020, 1, 1)
with open(path, "w") as f:
    f.write("event_id,subject,type,date,code,value,source\n")
    for i in range(n):
        t = types[rng.randrange(5)]
        d = start + datetime.timedelta(days=rng.randrange(1500))
        code = "I21.%d" % rng.randrange(10) if t == "mi" else ""
        value = "%.2f" % (rng.random() * 5) if t == "ldl" else ""
        f.write("EV%08d,P%07d,%s,%s,%s,%s,patient_register\n" % (i, rng.randrange(n // 10 + 1), t, d, code, value))
PY
echo "events: $n rows, $(du -h "$work/events.csv" | cut -f1)"
t0=$(date +%s.%N)
./target/release/rrct import events --database "sqlite://$work/rrct.db" "$work/events.csv" >/dev/null
t1=$(date +%s.%N)
sqlite3 "$work/plain.db" -cmd ".mode csv" ".import $work/events.csv events"
t2=$(date +%s.%N)
# A second reference: sqlite3 alone loading the same rows into rrct's own events table (its
# primary key and subject index), i.e. the database work rrct cannot avoid.
grep -v '^--' migrations/sqlite/0002_events.sql | sqlite3 "$work/schema.db"
t3=$(date +%s.%N)
sqlite3 "$work/schema.db" -cmd ".mode csv" ".import $work/events.csv staging" \
    "INSERT INTO events SELECT event_id, subject, type, date, NULLIF(code, ''), NULLIF(value, ''), source, hex(randomblob(32)), '2026-01-01T00:00:00.000000Z' FROM staging"
t4=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$n" <<'PY'
import sys
t0, t1, t2, t3, t4, n = map(float, sys.argv[1:])
rrct, plain, schema = t1 - t0, t2 - t1, t4 - t3
print(f"rrct import events              : {rrct:.2f} s ({n / rrct:,.0f} rows/s)")
print(f"sqlite3 .import, plain table    : {plain:.2f} s ({n / plain:,.0f} rows/s)")
print(f"sqlite3 into rrct's events table: {schema:.2f} s ({n / schema:,.0f} rows/s)")
print(f"ratio rrct / plain .import      : {rrct / plain:.2f} (target <= 2)")
print(f"ratio rrct / same-schema sqlite3: {rrct / schema:.2f}")
PY
