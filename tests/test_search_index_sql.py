"""A usual search's SQL is written without the ORM (search.index_sql): it must match exactly
what the ORM's query of the same search matches, on SQLite and PostgreSQL.

Every type-level query of the golden test runs both ways on its data set, plus the same
questions scoped to one patient (the patient's index rows only), with the reference rows
compared under the request's own base URL as the API does (``reference.serving``).
"""

from __future__ import annotations

import pytest
from django.db import connection

from fhir_api.models import Resource
from fhir_api.search import query as search_query
from fhir_api.search.types import reference

from .search_support import get, ordered
from .test_search_golden import QUERIES, dataset  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db

TYPE_QUERIES = sorted({q for q in QUERIES.values() if not q.startswith("?")})
SCOPED = [
    "Observation?patient=pat-anna&code=8867-4",
    "Observation?patient=pat-anna&code=http://loinc.org|8867-4&date=ge2026-03-01&date=lt2026-04",
    "Observation?subject=Patient/pat-bjorn&date=le2026-03-06",
    "Observation?patient=pat-anna&code-value-quantity=http://loinc.org|8867-4$gt70",
    "Observation?patient=pat-anna&value-quantity=gt60|http://unitsofmeasure.org|/min",
    "Observation?patient=Patient/pat-carl&category=vital-signs,laboratory",
    "Observation?patient=pat-dora&status=final&_lastUpdated=gt2000",
    "Observation?patient=pat-anna&code:not=8867-4",
    "Observation?patient=pat-eve&code:missing=false",
    "Observation?subject=http://testserver/fhir/Patient/pat-anna&code=8867-4",
    "Observation?subject=http://elsewhere.example/fhir/Patient/pat-anna",
    "Observation?patient=nobody&code=8867-4",
    "Observation?code=8867-4&_snapshot=1",
    # combo-* parameters read the rows of the parameters they unite (search.aliases)
    "Observation?patient=pat-anna&combo-code=8867-4,8480-6",
    "Observation?combo-code-value-quantity=8480-6$lt130",
    "Observation?patient=pat-anna&combo-value-quantity=gt60",
    "Observation?combo-code:missing=false&combo-code:text=heart",
]
# Searches the ORM builds: a negation, a column of the resource table, a chain, _has, _sort.
GENERAL = [
    "Observation?code:not=8867-4",
    "Observation?code:missing=true",
    "Observation?_id=hr-1",
    "Observation?_lastUpdated=gt2000",
    "Observation?subject:Patient.name=carlsson",
    "Patient?_has:Observation:patient:code=8867-4",
    "Observation?code=8867-4&_sort=date",
    "Observation?code=http://loinc.org|8867-4&_list=x",
    "Observation?combo-code:not=8480-6",
    "Observation?combo-value-quantity:missing=true",
    "Patient?_has:Observation:patient:combo-code=8480-6",
    "Observation?combo-code=8480-6&_sort=-combo-value-quantity",
]


def both(query: str) -> tuple[set[int] | None, set[int]]:
    """(the ids the written SQL matches, or None if it is not written; the ORM's ids)."""
    resource_type, _, rest = query.partition("?")
    items = search_query.parse_query_string(rest)
    request = search_query.parse(resource_type, items, strict=True)
    with reference.serving("http://testserver/fhir"):
        where = search_query.conditions(request)
        written = search_query.matches_sql(request, where)
        orm = set(search_query.apply(request, where).values_list("pk", flat=True))
        if written is None:
            return None, orm
        with connection.cursor() as cursor:
            cursor.execute(*written)
            ids = [row[0] for row in cursor.fetchall()]
    assert len(ids) == len(set(ids)), query  # DISTINCT: each resource once
    return set(ids), orm


def test_the_written_sql_matches_what_the_orm_matches(dataset):  # noqa: F811
    written = 0
    for query in [*TYPE_QUERIES, *SCOPED]:
        ids, orm = both(query)
        if ids is not None:
            written += 1
            assert ids == orm, query
    # Most searches are written: tokens, strings, dates, quantities, numbers, uris,
    # references, composites, :missing=false, one patient's rows.
    assert written >= 60, written


@pytest.mark.parametrize("query", GENERAL)
def test_searches_the_sql_is_not_written_for_go_through_the_orm(dataset, query):  # noqa: F811
    ids, orm = both(query)
    assert ids is None
    # and the API answers what the ORM's query matches
    resource_type, _, rest = query.partition("?")
    body = get(dataset, f"{resource_type}?{rest}&_count=1000")
    expected = Resource.objects.filter(pk__in=orm).values_list("logical_id", flat=True)
    assert sorted(ordered(body)) == sorted(expected)


def test_a_scoped_search_reads_only_the_patients_index_rows(dataset):  # noqa: F811
    request = search_query.parse(
        "Observation",
        [("patient", "pat-anna"), ("code", "8867-4"), ("date", "ge2026-03-01")],
        strict=True,
    )
    sql, params = search_query.matches_sql(request, search_query.conditions(request))
    # each index subquery names the patient: three tables, three times the patient column
    assert sql.count(".patient = %s") == 3
    assert params.count("pat-anna") >= 3
    assert '"fhir_resource"' not in sql


def test_long_values_are_searched_but_not_kept_in_the_cache(dataset):  # noqa: F811
    from fhir_api.search import index_sql

    long_code = "x" * 5000
    before = index_sql._compiled.cache_info().currsize
    ids, orm = both(f"Observation?code={long_code},{long_code}y")
    assert ids == orm == set()
    assert index_sql._compiled.cache_info().currsize == before
    ids, orm = both("Observation?code=short-unseen-1,short-unseen-2")  # these are kept
    assert ids == orm == set()
    assert index_sql._compiled.cache_info().currsize == before + 2
    cached = index_sql._compiled.cache_parameters()["maxsize"]
    assert cached is not None and cached <= 4096
