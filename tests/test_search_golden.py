"""The same searches give the same answers on SQLite and PostgreSQL (issue 3, acceptance).

A fixed data set (``data/search/dataset.json``) is written through the API, then each query
below runs and its matches (and includes, and total) are compared with
``data/search/expected.json``. ``make test`` runs this on SQLite and CI on PostgreSQL, against
the one file, so a difference between the databases fails one of them.

The expected file was generated once with ``SEARCH_GOLDEN_WRITE=1`` and then checked query by
query against hl7.org/fhir/R4B/search.html (the reasoning is in the comments below); regenerate
it only for a change of data or queries, and review the diff the same way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from fhir_api import json_io

from .search_support import entries, get, put

DATA = Path(__file__).parent / "data" / "search"
UCUM = "http://unitsofmeasure.org"

# name -> query. Comments give the expected answer and why (the data is in dataset.json).
QUERIES: dict[str, str] = {
    # --- token ---------------------------------------------------------------------------
    # code without system: every heart rate, the entered-in-error one too
    "token-code": "Observation?code=8867-4",
    # system|code
    "token-system-code": "Observation?code=http://loinc.org|29463-7",
    # a LOINC code under another system matches nothing
    "token-wrong-system": "Observation?code=http://snomed.info/sct|8867-4",
    # :text searches Coding.display / CodeableConcept.text: the four "Heart rate"s
    "token-text": "Observation?code:text=heart",
    # :not: status not final (preliminary, entered-in-error)
    "token-not": "Observation?status:not=final",
    # :not also finds resources without the element: obs-note has no category
    "token-not-missing": "Observation?category:not=vital-signs",
    "token-identifier": "Patient?identifier=http://hospital.example/mrn|MRN-1",
    "token-of-type": (
        "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|MRN-2"
    ),
    # OR within a parameter
    "token-or": "Patient?gender=female,unknown",
    "token-boolean": "Patient?active=true",
    "token-contactpoint": "Patient?email=anna@example.org",
    "token-codeableconcept": "Condition?clinical-status=active",
    "token-tag": "Patient?_tag=http://example.org/tags|vip",
    "token-missing": "Patient?identifier:missing=true",
    # --- string --------------------------------------------------------------------------
    # starts-with on each name part: "van der Berg" does not start with berg
    "string-default": "Patient?name=berg",
    "string-contains": "Patient?name:contains=berg",
    # accents and case folded: Björk
    "string-accents": "Patient?family=bjork",
    "string-exact": "Patient?family:exact=Björk",
    "string-exact-case": "Patient?family:exact=björk",
    "string-address": "Patient?address-city=goteborg",
    "string-value": "Observation?value-string:contains=smok",
    "string-given": "Patient?given=an",
    # --- date ----------------------------------------------------------------------------
    # within the UTC day: hr-2 is 03-06T07:00Z, glucose 07:30-05:00 is 12:30Z on the 5th
    "date-day": "Observation?date=2026-03-05",
    # ge: after the day, or within it; temp-2 is an open Period from 03-01
    "date-ge": "Observation?date=ge2026-03-06",
    # lt: starts before March
    "date-lt-month": "Observation?date=lt2026-03",
    # the second 08:00:00Z: hr-1 and bp-1, not the 08:00-09:00 Period
    "date-second": "Observation?date=2026-03-05T08:00:00Z",
    "date-sa": "Observation?date=sa2026-03-06",
    # ends before March: hr-3 (the 28th of February) and wt-3
    "date-eb": "Observation?date=eb2026-03-01",
    "date-period": "Encounter?date=2026-03-05",
    "date-open-period": "Encounter?date=gt2026-03-10",
    # le 1980: born in 1980 (within) or before
    "date-birthdate-le": "Patient?birthdate=le1980",
    "date-onset-period": "Condition?onset-date=lt2012",
    # 10:00+01:00 is 09:00Z on the 15th
    "date-zone": "Patient?death-date=2024-01-15",
    "date-missing": "Observation?date:missing=true",
    "date-and": "Observation?date=ge2026-03-05&date=lt2026-03-06",
    # ne: not within the day (enc-2 is still going on)
    "date-ne": "Encounter?date=ne2026-03-05",
    "date-last-updated": "Patient?_lastUpdated=gt2000-01-01",
    # --- number --------------------------------------------------------------------------
    "number-gt": "RiskAssessment?probability=gt0.2",
    # [0.115, 0.125)
    "number-precision": "RiskAssessment?probability=0.12",
    # [0.05, 0.15)
    "number-coarse": "RiskAssessment?probability=0.1",
    "number-missing": "RiskAssessment?probability:missing=true",
    "number-le": "RiskAssessment?probability=le0.12",
    "number-ne": "RiskAssessment?probability=ne0.12",
    # --- quantity ------------------------------------------------------------------------
    # canonical units: 154.3 [lb_av] is 69.99 kg
    "quantity-ucum": f"Observation?value-quantity=70|{UCUM}|kg",
    # no unit: any value over 100 (101.5 /min, 154.3 [lb_av], 100.4 [degF])
    "quantity-no-unit": "Observation?value-quantity=gt100",
    # 100.4 degF is 38.0 Cel
    "quantity-temperature": f"Observation?value-quantity=38|{UCUM}|Cel",
    # no system: the code (mmol/L is not converted)
    "quantity-code-only": "Observation?value-quantity=5.4||mmol/L",
    # ap: 80 ± 8 /min
    "quantity-ap": f"Observation?value-quantity=ap80|{UCUM}|/min",
    "quantity-le": f"Observation?value-quantity=le72.0|{UCUM}|/min",
    # ne: masses outside [69.5, 70.5) kg; quantities of other dimensions are not compared
    "quantity-ne": f"Observation?value-quantity=ne70|{UCUM}|kg",
    # sa: above 100 degF (37.2 Cel is 98.96 degF)
    "quantity-sa": f"Observation?value-quantity=sa100|{UCUM}|[degF]",
    # --- composite -----------------------------------------------------------------------
    "composite-component": (
        "Observation?component-code-value-quantity=http://loinc.org|8480-6$gt140"
    ),
    "composite-code-value": (
        f"Observation?code-value-quantity=http://loinc.org|29463-7$ge80|{UCUM}|kg"
    ),
    "composite-combo": "Observation?combo-code-value-quantity=8480-6$lt130",
    # --- reference -----------------------------------------------------------------------
    "reference-type-id": "Observation?subject=Patient/pat-anna",
    "reference-id": "Observation?patient=pat-bjorn",
    "reference-chain": "Observation?subject:Patient.name=carlsson",
    "reference-type-modifier": "Observation?subject:Patient=pat-dora",
    "reference-identifier": "Observation?subject:identifier=http://hospital.example/mrn|MRN-3",
    "reference-missing": "Observation?performer:missing=false",
    "reference-has": "Patient?_has:Observation:patient:code=2339-0",
    "reference-chain-token": (
        "Patient?general-practitioner.identifier=http://hl7.org/fhir/sid/us-npi|1234567890"
    ),
    # --- uri -----------------------------------------------------------------------------
    "uri-exact": "Questionnaire?url=http://example.org/fhir/Questionnaire/phq9",
    "uri-below": "Questionnaire?url:below=http://example.org/fhir",
    "uri-above": "Questionnaire?url:above=http://example.org/fhir/Questionnaire/phq9/v2",
    "uri-profile": "Patient?_profile=http://example.org/StructureDefinition/special-patient",
    # --- _id, results --------------------------------------------------------------------
    "id": "Patient?_id=pat-anna,pat-eve",
    # by the end of each date's range, latest first
    "sort-date-desc": "Observation?code=8867-4&_sort=-date",
    # 1975 first, pat-eve (no birthDate) last
    "sort-birthdate": "Patient?_sort=birthdate",
    "sort-family-desc": "Patient?_sort=-family",
    # in canonical units: 154.3 [lb_av] (69.99 kg) < 70 kg < 82.25 kg
    "sort-quantity": "Observation?code=29463-7&_sort=value-quantity",
    "sort-two-keys": "Observation?category=vital-signs&_sort=code,-_id",
    "count": "Observation?status=final&_summary=count",
    "include-iterate": (
        "MedicationRequest?_include=MedicationRequest:patient"
        "&_include:iterate=Patient:general-practitioner"
    ),
    "revinclude": "Observation?_id=obs-hr-1&_revinclude=Provenance:target",
    "system": "?_type=Patient,Practitioner&_id=pat-anna,doc-lee,obs-hr-1",
}


def outcome(api, query: str) -> dict[str, Any]:
    """What is compared: match ids (in order if sorted), include Type/ids, total."""
    sep = "&" if "?" in query else "?"
    body = get(api, f"{query}{sep}_count=100")
    matches = [
        (
            e["resource"]["id"]
            if "?_type" not in query
            else f"{e['resource']['resourceType']}/{e['resource']['id']}"
        )
        for e in entries(body)
    ]
    result: dict[str, Any] = {
        "query": query,
        "match": matches if "_sort=" in query else sorted(matches),
        "total": body.get("total"),
    }
    included = sorted(
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries(body, "include")
    )
    if included:
        result["include"] = included
    return result


@pytest.fixture
def dataset(api):
    for resource in json_io.loads((DATA / "dataset.json").read_text()):
        put(api, resource)
    return api


def test_same_answers_on_every_database(dataset):
    got = {name: outcome(dataset, query) for name, query in QUERIES.items()}
    path = DATA / "expected.json"
    if os.environ.get("SEARCH_GOLDEN_WRITE"):
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
        pytest.skip(f"wrote {path}: review it before committing")
    expected = json.loads(path.read_text())
    assert got.keys() == expected.keys()
    different = {name: (got[name], expected[name]) for name in got if got[name] != expected[name]}
    assert not different
