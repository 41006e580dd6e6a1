#!/usr/bin/env bash
# Enrolment latency under a standard load tool: wrk (Debian package `wrk`) with 32 connections
# for 20 s against POST /api/v1/trials/taste/enrolments of a release `rrct serve`, on SQLite and
# on PostgreSQL; prints throughput and p50/p90/p99. The PostgreSQL reference in the same run:
# pgbench with 32 clients, each transaction one single-row INSERT and COMMIT (the least work a
# durable enrolment can cost there). Targets (issue 19): p99 under 10 ms on both, PostgreSQL
# enrolments at least half the bare INSERT + COMMIT rate.
#
# Usage: bash benches/enrolment_wrk.sh   (RRCT_WRK_SECONDS, default 20; RRCT_WRK_CONNECTIONS,
# default 32; RRCT_BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres, an
# administrative URL on which a scratch database is made and dropped; RRCT_WRK_EXTRA, JSON
# members ending each body instead of TASTE's oral consent)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${RRCT_WRK_SECONDS:-20}
connections=${RRCT_WRK_CONNECTIONS:-32}
admin=${RRCT_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
for tool in wrk pgbench psql python3; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (Debian: wrk, postgresql-client)" >&2; exit 1; }
done
cargo build --release --quiet
work=$(mktemp -d)
scratch="rrct_wrk_$$"
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    psql -q "$admin" -c "DROP DATABASE IF EXISTS $scratch" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
export RRCT_SEED_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
[ -n "${RRCT_WRK_EXTRA:-}" ] && export RRCT_EXTRA="$RRCT_WRK_EXTRA"

# run BACKEND URL: serve, make a register token, load for $seconds, print the RESULT line.
run() {
    local name=$1 url=$2
    ./target/release/rrct serve --database "$url" --protocols protocols --bind 127.0.0.1:0 \
        >"$work/$name.log" 2>&1 &
    server=$!
    local addr=""
    for _ in $(seq 200); do
        addr=$(grep -o 'listening on [0-9.:]*' "$work/$name.log" | awk '{print $3}' || true)
        [ -n "$addr" ] && break
        sleep 0.1
    done
    [ -n "$addr" ] || { cat "$work/$name.log" >&2; exit 1; }
    RRCT_TOKEN=$(./target/release/rrct token create --database "$url" --role register --trial taste)
    export RRCT_TOKEN RRCT_RUN="$name"
    # A short warm-up (connections, page cache), then the measured run.
    wrk -t2 -c"$connections" -d2s -s benches/wrk/enrol.lua "http://$addr/api/v1/trials/taste/enrolments" >/dev/null
    export RRCT_RUN="${name}m"
    wrk -t2 -c"$connections" -d"${seconds}s" -s benches/wrk/enrol.lua \
        "http://$addr/api/v1/trials/taste/enrolments" | grep '^RESULT' | sed "s/^RESULT/$name/"
    kill "$server"; wait "$server" 2>/dev/null || true
    server=""
}

echo "== rrct serve, $connections connections, ${seconds} s, 2 wrk threads"
run sqlite "sqlite://$work/rrct.db" | tee "$work/sqlite.txt"
psql -q "$admin" -c "CREATE DATABASE $scratch" >/dev/null
pg_url="${admin%/*}/$scratch"
run postgres "$pg_url" | tee "$work/postgres.txt"

echo "== pgbench: $connections clients, single-row INSERT + COMMIT, ${seconds} s"
psql -q "$pg_url" -c "CREATE TABLE bare_insert (id bigserial PRIMARY KEY, record text NOT NULL, at timestamptz NOT NULL DEFAULT now())" >/dev/null
echo "INSERT INTO bare_insert (record) VALUES ('R' || :client_id || '-' || random());" >"$work/insert.sql"
pgbench -n -c "$connections" -j 2 -T "$seconds" -f "$work/insert.sql" "$pg_url" 2>/dev/null \
    | tee "$work/pgbench.txt" | grep -E '^(tps|latency)'

python3 - "$work/sqlite.txt" "$work/postgres.txt" "$work/pgbench.txt" <<'PY'
import re, sys
def result(path):
    line = open(path).read().split()
    return {k: float(v) for k, v in (f.split("=") for f in line[1:])}
s, p = result(sys.argv[1]), result(sys.argv[2])
tps = float(re.search(r"tps = ([0-9.]+)", open(sys.argv[3]).read()).group(1))
for name, r in (("SQLite", s), ("PostgreSQL", p)):
    print(f"{name:<11} {r['rps']:>8.0f} enrolments/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms"
          f"  max {r['max_ms']:.1f} ms  errors {int(r['errors'])}  (target p99 < 10 ms)")
print(f"pgbench     {tps:>8.0f} INSERT+COMMIT/s; rrct on PostgreSQL at {p['rps'] / tps:.2f} of it (target >= 0.5)")
PY
