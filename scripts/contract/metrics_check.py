"""Parse a scrape of GET /metrics with prometheus_client's OpenMetrics parser and check that it
holds the engine's metrics and nothing per arm or per subject.

Usage: metrics_check.py FILE
"""

import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
families = {f.name: f for f in text_string_to_metric_families(text)}
for name in ("rrct_enrolments", "rrct_enrolment_duration_seconds", "rrct_enrolment_batch_size",
             "rrct_randomised", "rrct_outbox_backlog", "rrct_database_connections"):
    assert name in families, f"{name} missing from the scrape: {sorted(families)}"
labels = {k for f in families.values() for s in f.samples for k in s.labels}
assert not labels & {"arm", "subject", "record_id", "stratum"}, labels
randomised = [s for s in families["rrct_randomised"].samples if s.labels.get("trial") == "taste"]
assert randomised and randomised[0].value >= 1, randomised
print(f"metrics: {len(families)} families parsed as OpenMetrics; labels {sorted(labels)}")
