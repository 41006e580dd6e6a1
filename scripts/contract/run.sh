#!/usr/bin/env bash
# The API's contract checked against a live `rrct serve` with standard tools:
#   1. the OpenAPI document (GET /api/v1/openapi.json) linted by openapi-spec-validator;
#   2. every operation fuzzed by schemathesis, once with a register token and once with an
#      admin token: no 5xx, statuses, content types, headers and bodies as documented;
#   3. the FHIR resources (ResearchStudy, ResearchSubject, the searchset Bundle, the
#      CapabilityStatement, OperationOutcome) validated against the FHIR R4 models of the
#      fhir.resources package (6.4.0, FHIR 4.0.1), with the arm and site rules checked;
#   4. GET /metrics parsed by the OpenMetrics parser of prometheus_client.
# The Python tools are installed into virtual environments under $RRCT_CONTRACT_VENVS
# (default ~/.cache/rrct/contract) when missing. Examples per operation: $CONTRACT_EXAMPLES
# (default 30). Needs no standard input; prints the operations and cases schemathesis ran.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
started=$(date +%s)

examples=${CONTRACT_EXAMPLES:-30}
. scripts/contract/tools.sh
contract_install
tools=$contract_tools
fhir=$contract_fhir

cargo build -q --bin rrct
rrct="${CARGO_TARGET_DIR:-$root/target}/debug/rrct"

work=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

db="sqlite://$work/rrct.db"
mkdir -p "$work/protocols"
cp protocols/taste.toml "$work/protocols/"
python3 -c 'import secrets; print(secrets.token_hex(32))' >"$work/seed.key"
export RUST_LOG=${RUST_LOG:-warn}
token() { "$rrct" token create --database "$db" "$@"; }
# The database and the trial exist once the server has started once; tokens need the tables.
"$rrct" serve --database "$db" --protocols "$work/protocols" --seed-key-file "$work/seed.key" \
    --bind 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.log" </dev/null &
server=$!
for _ in $(seq 100); do grep -q '^listening on ' "$work/serve.out" 2>/dev/null && break; sleep 0.2; done
address=$(sed -n 's/^listening on //p' "$work/serve.out")
[ -n "$address" ] || { cat "$work/serve.log" >&2; echo "contract: rrct serve did not start" >&2; exit 1; }
base="http://$address"

admin=$(token --role admin)
register=$(token --role register --trial taste)
register_upp=$(token --role register --trial taste --site UPP)
sponsor=$(token --role sponsor --trial taste)
sponsor_upp=$(token --role sponsor --trial taste --site UPP)
statistician=$(token --role statistician --trial taste)

# A few patients at two sites, so the reads have subjects to show.
for i in 1 2 3 4 5 6; do
    site=UPP; [ $((i % 2)) -eq 0 ] && site=LKP
    curl -sf -o /dev/null -H "Authorization: Bearer $register" -H 'Content-Type: application/json' \
        -d "{\"record_id\": \"C$i\", \"subject\": \"CS$i\", \"site\": \"$site\", \"fields\": {\"age\": 6$i, \"sex\": \"F\", \"diagnosis\": \"STEMI\", \"symptom_onset_hours\": 3.5}, \"consent\": {\"kind\": \"oral\", \"taken_by\": \"cath-lab\", \"taken_at\": \"2026-01-01\"}}" \
        "$base/api/v1/trials/taste/enrolments"
done

echo "contract: linting the OpenAPI document"
curl -sf "$base/api/v1/openapi.json" -o "$work/openapi.json"
"$tools/bin/openapi-spec-validator" "$work/openapi.json"

echo "contract: FHIR R4 resources"
"$fhir/bin/python" scripts/contract/fhir_check.py "$base" "$statistician" "$sponsor" "$sponsor_upp" "$register_upp"

echo "contract: metrics"
curl -sf -H "Authorization: Bearer $admin" "$base/metrics" -o "$work/metrics.txt"
"$tools/bin/python" scripts/contract/metrics_check.py "$work/metrics.txt"

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection
fuzz() {
    local who=$1 bearer=$2
    echo "contract: schemathesis as $who ($examples examples per operation)"
    set +e
    "$tools/bin/schemathesis" --config-file scripts/contract/schemathesis.toml \
        run "$work/openapi.json" --url "$base" \
        -H "Authorization: Bearer $bearer" --checks "$checks" --max-examples "$examples" \
        --phases examples,coverage,fuzzing --workers 1 --seed 20 --no-color \
        --suppress-health-check all --request-timeout 30 </dev/null >"$work/st-$who.txt" 2>&1
    local status=$?
    set -e
    # The summary: operations and test cases, failures when any.
    sed -n '/SUMMARY/,$p' "$work/st-$who.txt"
    if [ $status -ne 0 ]; then
        cat "$work/st-$who.txt" >&2
        echo "contract: schemathesis ($who) failed" >&2
        exit 1
    fi
}
fuzz register "$register"
fuzz admin "$admin"

if grep -E 'panicked|thread .* panicked' "$work/serve.log"; then
    echo "contract: the server panicked" >&2
    exit 1
fi
echo "contract: passed in $(( $(date +%s) - started )) s"
