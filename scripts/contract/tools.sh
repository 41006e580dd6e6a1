# Sourced by scripts/contract/run.sh and .ci/run: installs the contract checks' Python tools,
# when missing, into virtual environments under $RRCT_CONTRACT_VENVS (default
# ~/.cache/rrct/contract), and sets $contract_tools (schemathesis, openapi-spec-validator,
# prometheus_client) and $contract_fhir (fhir.resources 6.4.0: the FHIR R4 4.0.1 models, which
# need pydantic 1) to their directories.
contract_venvs=${RRCT_CONTRACT_VENVS:-$HOME/.cache/rrct/contract}
contract_tools="$contract_venvs/tools"
contract_fhir="$contract_venvs/fhir-r4"

contract_venv() {
    # Debian's own Python keeps venv in a package of its own.
    python3 -m venv "$1" 2>/dev/null || {
        DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$1"
    }
}

contract_install() {
    if ! "$contract_tools/bin/python" -c 'import schemathesis, openapi_spec_validator, prometheus_client' 2>/dev/null; then
        echo "contract: installing schemathesis, openapi-spec-validator and prometheus_client into $contract_tools" >&2
        contract_venv "$contract_tools"
        "$contract_tools/bin/pip" install -q --disable-pip-version-check \
            'schemathesis>=4,<5' 'openapi-spec-validator>=0.7' 'prometheus_client>=0.20' </dev/null >&2
    fi
    if ! "$contract_fhir/bin/python" -c 'import fhir.resources as f; assert f.__fhir_version__ == "4.0.1"' 2>/dev/null; then
        echo "contract: installing fhir.resources 6.4.0 (FHIR R4 4.0.1) into $contract_fhir" >&2
        contract_venv "$contract_fhir"
        "$contract_fhir/bin/pip" install -q --disable-pip-version-check 'fhir.resources==6.4.0' 'pydantic<2' </dev/null >&2
    fi
}
