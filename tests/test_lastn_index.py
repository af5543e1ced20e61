"""``fhir_lastn_index``, $lastn's index: what a write stores, and what migration 0009 fills in
for the Observations a database already held, are the same rows."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection

from fhir_api import services
from fhir_api.models import LastnIndex

pytestmark = pytest.mark.django_db
migration = importlib.import_module("fhir_api.migrations.0009_lastn_index")

LOINC = "http://loinc.org"


def observation(ident: str, code: dict, subject: str = "Patient/p1", **extra) -> None:
    body = {"resourceType": "Observation", "id": ident, "status": "final", "code": code}
    services.update("Observation", ident, {**body, "subject": {"reference": subject}, **extra})


def stored() -> list[tuple]:
    names = ("resource_id", "resource_type", "param", "patient", "system", "code", "label", "low")
    return sorted(LastnIndex.objects.values_list(*names))


def test_the_migration_fills_the_rows_a_write_makes():
    services.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
    hr = {"coding": [{"system": LOINC, "code": "8867-4"}]}
    observation("dt", hr, effectiveDateTime="2026-03-01T10:00:00+02:00")
    observation("period", hr, effectivePeriod={"start": "2026-03-02", "end": "2026-03-03"})
    observation("no-start", hr, effectivePeriod={"end": "2026-03-03"})
    observation("no-time", hr)
    observation("instant", hr, effectiveInstant="2026-03-04T10:00:00.123Z")
    twice = {"coding": [{"system": LOINC, "code": "8867-4"}, {"system": LOINC, "code": "8867-4"}]}
    observation("twice", twice, effectiveDateTime="2026-03")
    two = {"coding": [{"system": LOINC, "code": "85354-9"}, {"system": "urn:x", "code": "bp"}]}
    observation("two-codings", two, effectiveDateTime="2026-03-05")
    observation("text-only", {"text": "Pain Score"}, effectiveDateTime="2026-03-06")
    observation("group", hr, subject="Group/g1", performer=[{"reference": "Patient/p1"}])
    observation("nobody", hr, subject="Device/d1", effectiveDateTime="2026-03-07")
    services.create("Patient", {"resourceType": "Patient"})

    written = stored()
    # every code of every Observation once, with its effective start (none: 0001-01-01)
    assert len(written) == 11
    assert {(row[6], row[5]) for row in written if row[5] in ("", "bp")} == {
        ("pain score", ""),
        ("", "bp"),
    }
    LastnIndex.objects.all().delete()
    with connection.cursor() as cursor:
        migration.insert_rows(cursor.execute, connection.vendor)
    assert stored() == written


CONCEPTS = [
    {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}], "text": "HR"},
    {"coding": [{"code": "8867-4"}, {"system": "urn:x", "code": "hr"}]},
    {"coding": [{"system": LOINC}], "text": "Only a system"},
    {"coding": [{"system": LOINC, "code": "8867-4"}, {"display": "neither"}]},
    {"coding": [{"system": LOINC, "code": "x" * 300}]},
    {"text": "Pain Score"},
    {"coding": []},
    {"coding": ["not a coding"]},
]


@pytest.mark.parametrize("concept", CONCEPTS)
def test_lastn_groups_a_stored_observation_by_the_keys_of_its_index_rows(concept):
    """$lastn ties an Observation's codes together by reading them from its JSON: the keys it
    reads are the ones the index wrote for that Observation."""
    from fhir_api.operations.lastn import _codings
    from fhir_api.search.extract import extract

    rows = extract("Observation", {"resourceType": "Observation", "code": concept})
    written = {row[1:4] for row in rows.rows.get(LastnIndex, ())}
    assert _codings({"code": concept}) == written
