"""Validate rrct's FHIR answers against the FHIR R4 (4.0.1) models of fhir.resources 6.4.0.

Usage: fhir_check.py BASE_URL STATISTICIAN SPONSOR SPONSOR_SITE_UPP REGISTER_SITE_UPP

Reads the CapabilityStatement, the taste ResearchStudy, every page of the ResearchSubject
search (following `next` links), one subject by id and an OperationOutcome; each must parse as
its R4 model. Also checks the arm rules (a sponsor never gets assignedArm/actualArm or the
study's arms; the statistician does) and the site rule (a site-scoped token sees its site's
subjects only). Standard library plus fhir.resources.
"""

import json
import sys
import urllib.error
import urllib.request

import fhir.resources as fr
from fhir.resources.bundle import Bundle
from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.operationoutcome import OperationOutcome
from fhir.resources.researchstudy import ResearchStudy
from fhir.resources.researchsubject import ResearchSubject

assert fr.__fhir_version__ == "4.0.1", fr.__fhir_version__

base, statistician, sponsor, sponsor_upp, register_upp = sys.argv[1:6]
checked = 0


def get(path, token=None, expect=200):
    url = path if path.startswith("http") else base + path
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request) as r:
            status, ctype, body = r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        status, ctype, body = e.code, e.headers.get("Content-Type"), e.read()
    assert status == expect, f"{url}: {status}, expected {expect}: {body[:300]!r}"
    assert ctype == "application/fhir+json", f"{url}: content type {ctype}"
    return json.loads(body)


def valid(model, resource):
    global checked
    model.parse_obj(resource)
    checked += 1
    return resource


valid(CapabilityStatement, get("/fhir/metadata"))

study = valid(ResearchStudy, get("/fhir/ResearchStudy/taste", statistician))
assert [a["name"] for a in study.get("arm", [])], "the statistician sees the arms"
assert len(study["site"]) > 1, study["site"]
blinded = valid(ResearchStudy, get("/fhir/ResearchStudy/taste", sponsor))
assert "arm" not in blinded, "a sponsor never sees the arms"
own = valid(ResearchStudy, get("/fhir/ResearchStudy/taste", sponsor_upp))
assert [s["identifier"]["value"] for s in own["site"]] == ["UPP"], own["site"]


def subjects(token, count=2):
    """Every subject of the search, page by page."""
    found, url, pages = [], f"/fhir/ResearchSubject?study=taste&_count={count}", 0
    while url:
        bundle = valid(Bundle, get(url, token))
        assert bundle["type"] == "searchset"
        for entry in bundle.get("entry", []):
            found.append(valid(ResearchSubject, entry["resource"]))
        url = next((l["url"] for l in bundle.get("link", []) if l["relation"] == "next"), None)
        pages += 1
    assert len(found) == bundle["total"], (len(found), bundle["total"])
    return found, pages


every, pages = subjects(statistician)
assert len(every) >= 4 and pages > 1, (len(every), pages)
assert all("assignedArm" in s for s in every), "the statistician sees each subject's arm"
for token in (sponsor, sponsor_upp):
    for s in subjects(token)[0]:
        assert "assignedArm" not in s and "actualArm" not in s, s
site_of = lambda s: s["extension"][0]["valueReference"]["identifier"]["value"]
for token in (sponsor_upp, register_upp):
    seen = subjects(token)[0]
    assert seen and {site_of(s) for s in seen} == {"UPP"}, [site_of(s) for s in seen]
other = next(s for s in every if site_of(s) != "UPP")
valid(ResearchSubject, get(f"/fhir/ResearchSubject/{other['id']}", statistician))
valid(OperationOutcome, get(f"/fhir/ResearchSubject/{other['id']}", sponsor_upp, expect=404))
valid(OperationOutcome, get("/fhir/ResearchStudy/taste", None, expect=401))
valid(OperationOutcome, get("/fhir/ResearchStudy/nosuch", statistician, expect=404))
valid(OperationOutcome, get("/fhir/ResearchSubject?study=taste&_count=0", statistician, expect=400))
valid(OperationOutcome, get("/fhir/ResearchSubject", statistician, expect=400))
print(f"fhir: {checked} resources valid as FHIR R4 {fr.__fhir_version__}; "
      f"{len(every)} subjects over {pages} pages; arm and site rules hold")
