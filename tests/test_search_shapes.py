"""A search's index SQL is written once per shape and reused for other patients
(search.shapes): each patient must still get exactly their own resources, the answers must be
those of the SQL written afresh, and nothing found later may be missed."""

from __future__ import annotations

import pytest
from django.db import connection

from fhir_api.models import Resource
from fhir_api.search import query as search_query
from fhir_api.search import shapes
from fhir_api.search.types import reference

from .search_support import LOINC, VITAL_SIGNS, found, put, status
from .test_search_golden import dataset  # noqa: F401 (the fixture)
from .test_search_index_sql import SCOPED

pytestmark = pytest.mark.django_db

PATIENTS = ["pat-anna", "pat-bjorn", "pat-carl", "pat-dora", "pat-eve", "nobody"]
BASE = "http://testserver/fhir"


def ids(statement) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(*statement)
        return {row[0] for row in cursor.fetchall()}


def request_of(query: str) -> search_query.SearchRequest:
    resource_type, _, rest = query.partition("?")
    return search_query.parse(resource_type, search_query.parse_query_string(rest), strict=True)


def written_afresh(query: str) -> set[int] | None:
    request = request_of(query)
    statement = search_query.matches_sql(request, search_query.conditions(request))
    return None if statement is None else ids(statement)


def by_shape(query: str) -> set[int] | None:
    found_shape = shapes.matches(request_of(query))
    return None if found_shape is None else ids(found_shape[0])


def test_each_patient_gets_what_the_sql_written_afresh_finds(dataset):  # noqa: F811
    shapes._shape.cache_clear()
    kept = 0
    with reference.serving(BASE):
        for query in SCOPED:
            for patient in PATIENTS:
                asked = query.replace("pat-anna", patient)
                afresh, shaped = written_afresh(asked), by_shape(asked)
                if shaped is not None:
                    kept += 1
                    assert shaped == afresh, asked
    # one statement per shape, whichever patient asked first
    assert kept >= 40, kept
    assert shapes._shape.cache_info().hits >= kept - len(SCOPED)


def test_the_patients_of_one_shape_do_not_see_each_others_resources(dataset):  # noqa: F811
    query = "Observation?patient={}&code=http://loinc.org|8867-4"
    answers = {p: found(dataset, query.format(p)) for p in PATIENTS}
    assert answers["pat-anna"] and answers["nobody"] == set()
    for patient, ids_found in answers.items():
        for other, other_ids in answers.items():
            if other != patient:
                assert not ids_found & other_ids, (patient, other)
    # and "Patient/X" is the same question as "X"
    assert found(dataset, query.format("Patient/pat-anna")) == answers["pat-anna"]


def test_a_resource_written_after_its_shape_was_kept_is_found(dataset):  # noqa: F811
    query = "Observation?patient={}&code=http://loinc.org|8867-4&date=ge2030-01-01"
    assert found(dataset, query.format("pat-anna")) == set()
    put(
        dataset,
        {
            "resourceType": "Observation",
            "id": "later-hr",
            "status": "final",
            "category": VITAL_SIGNS,
            "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
            "subject": {"reference": "Patient/pat-bjorn"},
            "effectiveDateTime": "2030-02-01T08:00:00Z",
            "valueQuantity": {"value": 71, "unit": "/min", "code": "/min"},
        },
    )
    assert found(dataset, query.format("pat-bjorn")) == {"later-hr"}
    assert found(dataset, query.format("pat-anna")) == set()


@pytest.mark.parametrize(
    "query",
    [
        # absolute references (ours and another server's) and odd ids are written each time
        "Observation?subject=http://testserver/fhir/Patient/pat-anna&code=8867-4",
        "Observation?subject=http://elsewhere.example/fhir/Patient/pat-anna",
        f"Observation?patient={shapes.STAND_IN}",
        f"Observation?patient=pat-anna&code={shapes.STAND_IN}",
    ],
)
def test_searches_not_kept_by_shape_still_answer(dataset, query):  # noqa: F811
    with reference.serving(BASE):
        assert by_shape(query) is None
        afresh = written_afresh(query)
    expected = set(Resource.objects.filter(pk__in=afresh).values_list("logical_id", flat=True))
    assert found(dataset, query) == expected


def test_a_bad_value_is_refused_each_time_not_kept(dataset):  # noqa: F811
    for patient in ("pat-anna", "pat-bjorn", "pat-anna"):
        assert status(dataset, f"Observation?patient={patient}&date=ge2026-13-45") == 400
