"""A search that reads only one patient's index rows runs on PostgreSQL as a statement prepared
once per connection (search.fetch.execute with fhir_api.prepared): the same answers as the
plain statement, run after run (past the first five, when PostgreSQL may switch to a generic
plan), and after the session lost its statements. Searches over all patients stay plain. So
does $lastn's statement."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fhir_api import services

from .search_support import VITAL_SIGNS, entries, get

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's"
    ),
]

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def observation(pid: str, code: str, day: int, value: int) -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": VITAL_SIGNS,
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": f"2026-10-{day:02d}T08:00:00Z",
        "valueQuantity": {"value": value, "unit": "/min", "system": UCUM, "code": "/min"},
    }


@pytest.fixture
def patients(api) -> list[str]:
    ids = []
    for n in range(3):
        pid = services.create("Patient", {"resourceType": "Patient", "gender": "female"})
        pid = pid.resource.logical_id
        ids.append(pid)
        for day in range(1, 13):
            code = "8867-4" if day % 3 else "9279-1"
            services.create("Observation", observation(pid, code, day, 60 + 10 * n + 7 * day))
    return ids


QUERIES = [
    "Observation?patient={p}&code=http://loinc.org|8867-4&date=ge2026-10-03&date=lt2026-10-10",
    "Observation?patient={p}&code-value-quantity=http://loinc.org|8867-4$gt120&_count=50",
    "Observation?patient={p}&code=http://loinc.org|8867-4&_include=Observation:subject",
    "Observation?patient={p}&code=http://loinc.org|8867-4&_count=2",
    "Observation?patient={p}&category=vital-signs&_summary=count",
    # $lastn's statement reads one patient's rows only, and holds quoted literals
    "Observation/$lastn?patient={p}&category=vital-signs",
    "Observation/$lastn?patient={p}&code=http://loinc.org|8867-4&max=3",
]


def answer(api, query: str) -> tuple:
    body = get(api, query)
    return (
        sorted(e["resource"]["id"] for e in entries(body)),
        sorted(e["resource"]["id"] for e in entries(body, "include")),
        body.get("total"),
        [link["relation"] for link in body.get("link", [])],
    )


def first_words(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"].split()[0] for q in queries.captured_queries]


def test_a_patients_search_is_prepared_and_answers_as_the_plain_statement(api, patients, settings):
    settings.DB_PREPARED_STATEMENTS = False
    plain = {(q, p): answer(api, q.format(p=p)) for q in QUERIES for p in patients}
    assert any(total for _m, _i, total, _l in plain.values())
    settings.DB_PREPARED_STATEMENTS = True
    for _round in range(3):  # 9 runs of each statement: past PostgreSQL's five custom plans
        for q in QUERIES:
            for p in patients:
                with CaptureQueriesContext(connection) as queries:
                    got = answer(api, q.format(p=p))
                assert got == plain[(q, p)], q.format(p=p)
                assert "EXECUTE" in first_words(queries)


def test_a_search_over_all_patients_is_planned_each_time(api, patients):
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            body = get(api, "Observation?code=http://loinc.org|8867-4")
        assert body["total"] == 3 * 8
        words = first_words(queries)
        assert "EXECUTE" not in words and "PREPARE" not in words


def test_a_patients_search_goes_on_after_the_session_discards_its_statements(api, patients):
    query = QUERIES[0].format(p=patients[0])
    before = answer(api, query)
    with connection.cursor() as cursor:
        cursor.execute("DISCARD ALL")  # as a pooler's reset query does
    assert answer(api, query) == before
    assert answer(api, query) == before


def test_a_patients_search_runs_the_generic_plan_from_the_first_run(api, patients):
    """A rare value (a heart rate above 120) would otherwise have every run planned again."""
    query = QUERIES[1].format(p=patients[0])
    before = answer(api, query)
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone()[0] == "force_generic_plan"
        cursor.execute("DISCARD ALL")  # back to the default: slower, still right
    assert answer(api, query) == before
