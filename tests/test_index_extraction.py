"""Index extraction: what a search finds depends on these rows being right."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from fhir_api import json_io
from fhir_api.models import CompositeIndex, DateIndex, QuantityIndex, ReferenceIndex, TokenIndex
from fhir_api.search.extract import COLUMNS, extract

EXAMPLES = sorted((Path(__file__).parent / "data" / "hl7-examples").glob("*.json"))


def load(name: str) -> dict:
    return json_io.loads((Path(__file__).parent / "data" / "hl7-examples" / name).read_text())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_official_example_extracts_well_formed_rows(path):
    data = json_io.loads(path.read_text())
    rows = extract(data["resourceType"], data)
    for model, table in rows.rows.items():
        for row in table:
            assert len(row) == 1 + len(COLUMNS[model]), (model.__name__, row)
            assert isinstance(row[0], str) and row[0]


def test_most_official_examples_have_searchable_values():
    empty = [
        p.stem
        for p in EXAMPLES
        if not extract(
            json_io.loads(p.read_text())["resourceType"], json_io.loads(p.read_text())
        ).rows
    ]
    assert len(empty) < len(EXAMPLES) // 10, empty


def test_observation_rows_follow_the_definitions():
    rows = extract("Observation", load("Observation-f003.json"))
    tokens = rows.rows[TokenIndex]
    assert ("code", "http://loinc.org", "11557-6", "carbon dioxide in blood") in tokens
    assert ("status", "http://hl7.org/fhir/observation-status", "final", None) in tokens
    refs = rows.rows[ReferenceIndex]
    assert ("subject", "Patient", "f001", "", "", "") in refs
    assert ("patient", "Patient", "f001", "", "", "") in refs
    # value 6.2 kPa, also indexed in pascals for unit-aware search
    assert (
        "value-quantity",
        6.2,
        "http://unitsofmeasure.org",
        "kPa",
        "kPa",
        6200.0,
        "Pa",
    ) in rows.rows[QuantityIndex]
    composite = rows.rows[CompositeIndex]
    assert any(
        r[0] == "code-value-quantity" and r[2] == "11557-6" and r[5] == 6.2 for r in composite
    )
    # effectivePeriod → [start, end + 1 s) in the given +01:00 zone
    (date,) = rows.rows[DateIndex]
    tz = timezone(timedelta(hours=1))
    assert date == (
        "date",
        datetime(2013, 4, 2, 10, 30, 10, tzinfo=tz),
        datetime(2013, 4, 5, 10, 30, 11, tzinfo=tz),
    )
    assert rows.patient == "f001"


def test_blood_pressure_components_are_searchable_per_component():
    bp = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-11-27T10:00:00Z",
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "valueQuantity": {
                    "value": 120,
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                },
            },
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                "valueQuantity": {
                    "value": 80,
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                },
            },
        ],
    }
    rows = extract("Observation", bp)
    pairs = {
        (r[2], r[5]) for r in rows.rows[CompositeIndex] if r[0] == "component-code-value-quantity"
    }
    assert pairs == {("8480-6", 120.0), ("8462-4", 80.0)}
    assert (
        "date",
        datetime(2026, 11, 27, 10, tzinfo=UTC),
        datetime(2026, 11, 27, 10, 0, 1, tzinfo=UTC),
    ) in rows.rows[DateIndex]


def test_patient_strings_tokens_and_identifier_types():
    rows = extract("Patient", load("Patient-ch-example.json"))
    tokens = rows.rows[TokenIndex]
    assert ("gender", "http://hl7.org/fhir/administrative-gender", "male", None) in tokens
    assert any(t[0] == "identifier:of-type" and t[2].startswith("MR|") for t in tokens)
    assert rows.patient == load("Patient-ch-example.json")["id"]
