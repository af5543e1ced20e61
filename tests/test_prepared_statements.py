"""Creates on PostgreSQL run as statements prepared once per connection (fhir_api.prepared):
they store the same rows as the plain statement, and keep working when the connection is
replaced, after transactions that rolled back or failed, and after the session lost its
prepared statements."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from fhir_api import prepared, services
from fhir_api.models import INDEX_MODELS, Resource, ResourceVersion

from .search_support import VITAL_SIGNS

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's"
)

SYSTEM = "https://clouddth.example/patient-id"


@pytest.fixture
def user(django_user_model):
    """A user without a password: the API authenticates by token, and hashing costs 0.3 s."""
    return django_user_model.objects.create_user("clinician")


def patient(mrn: str) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": mrn}],
        "name": [{"family": "Prepared", "given": ["Ada"]}],
        "birthDate": "1970-03-04",
        "telecom": [{"system": "phone", "value": "+44 20 7946 0000"}],
    }


def observation(pid: str, value: str = "72.50") -> dict:
    """A heart rate with a decimal, a period, a blood-pressure-style component (composite rows)
    and references whose url and identifier columns are empty for every row."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": VITAL_SIGNS,
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "HR"},
        "subject": {"reference": f"Patient/{pid}"},
        "effectivePeriod": {"start": "2026-11-27T10:00:00+01:00", "end": "2026-11-27T10:05:00Z"},
        "valueQuantity": {
            "value": value,
            "unit": "beats/minute",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "valueQuantity": {
                    "value": 120,
                    "unit": "mmHg",
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                },
            }
        ],
    }


def stored(resource_type: str, logical_id: str) -> dict:
    """What a create stored: the version row and every index row, without the keys that differ
    between two resources (the database ids, the logical id itself)."""
    row = Resource.objects.get(resource_type=resource_type, logical_id=logical_id)
    version = ResourceVersion.objects.get(resource=row)

    def same(value):
        return "<self>" if value == logical_id else value

    index = {}
    for model in INDEX_MODELS:
        names = [
            f.attname for f in model._meta.concrete_fields if f.attname not in ("id", "resource_id")
        ]
        index[model.__name__] = sorted(
            tuple(same(v) for v in values)
            for values in model.objects.filter(resource_id=row.pk).values_list(*names)
        )
    body = services.json_io.loads(row.content)
    body.pop("id")
    body["meta"].pop("lastUpdated")
    return {
        "row": (row.version_id, row.deleted, row.content == version.content),
        "version": (version.version_id, version.method, version.deleted),
        "body": body,
        "index": index,
    }


def statements(queries: CaptureQueriesContext) -> list[str]:
    """The first word of each statement sent, but the savepoints of the test's transaction."""
    words = [q["sql"].split()[0] for q in queries.captured_queries]
    return [w for w in words if w not in ("SAVEPOINT", "RELEASE")]


def create(resource: dict) -> str:
    return services.create(resource["resourceType"], resource).resource.logical_id


def test_prepared_creates_store_the_same_rows_as_plain_statements(db, settings):
    pid = create(patient("P-0"))
    settings.DB_PREPARED_STATEMENTS = False
    plain = [create(patient("P-1")), create(observation(pid)), create(observation(pid, "0.10"))]
    settings.DB_PREPARED_STATEMENTS = True
    # Each shape twice: the second one runs the statement prepared by the first.
    made = [create(patient("P-1")) for _ in range(2)]
    made += [create(observation(pid)) for _ in range(2)]
    made += [create(observation(pid, "0.10")) for _ in range(2)]
    with CaptureQueriesContext(connection) as again:
        create(observation(pid))
    assert statements(again) == ["EXECUTE"]

    def like(lid: str) -> dict:
        return stored(Resource.objects.get(logical_id=lid).resource_type, lid)

    expected = [like(lid) for lid in plain]
    assert [like(lid) for lid in made] == [e for e in expected for _ in range(2)]
    assert expected[1]["index"]["QuantityIndex"], "the Observation has quantity rows"
    assert expected[1]["index"]["CompositeIndex"], "and composite rows"
    assert expected[2] != expected[1]  # the value differs, and shows in the rows


def search(api, query: str) -> list[str]:
    r = api.fhir("GET", query)
    assert r.status_code == 200, r.content
    return sorted(e["resource"]["id"] for e in r.json_body.get("entry", []))


def heart_rates(api, pid: str) -> list[str]:
    """The patient's heart rates (not the NEWS2 scores its twin writes after each one)."""
    return search(api, f"/fhir/Observation?subject=Patient/{pid}&code=http://loinc.org|8867-4")


def post(api, resource: dict) -> str:
    r = api.fhir("POST", f"/fhir/{resource['resourceType']}", resource)
    assert r.status_code == 201, r.content
    return r.json_body["id"]


def test_creates_go_on_when_the_connection_is_closed_and_reopened(transactional_db, api):
    pid = post(api, patient("C-0"))
    before = [post(api, observation(pid)) for _ in range(2)]
    connection.close()  # as CONN_MAX_AGE or a failed health check does between requests
    after = [post(api, observation(pid)) for _ in range(2)]
    connection.close()
    # In a transaction, where a statement wrongly thought prepared could not be retried.
    with transaction.atomic():
        after.append(services.create("Observation", observation(pid)).resource.logical_id)
    after.append(post(api, observation(pid)))
    assert heart_rates(api, pid) == sorted(before + after)
    assert search(api, f"/fhir/Patient?identifier={SYSTEM}|C-0") == [pid]


def test_a_create_rolled_back_leaves_nothing_and_the_next_one_works(transactional_db, api):
    pid = post(api, patient("R-0"))
    connection.close()  # the statement is prepared inside the transaction below
    with pytest.raises(RuntimeError), transaction.atomic():
        gone = services.create("Observation", observation(pid)).resource.logical_id
        raise RuntimeError("the client's transaction fails after the create")
    assert not Resource.objects.filter(logical_id=gone).exists()
    kept = post(api, observation(pid))
    assert heart_rates(api, pid) == [kept]


def test_a_create_in_a_failed_transaction_fails_and_the_next_one_works(transactional_db, api):
    pid = post(api, patient("F-0"))
    connection.close()  # the create below is the first on its connection: it would prepare
    with transaction.atomic():
        transaction.set_rollback(True)  # something before it in the transaction failed
        with pytest.raises(DatabaseError):
            services.create("Observation", observation(pid))
    with transaction.atomic():  # where a statement wrongly thought prepared could not be retried
        kept = [services.create("Observation", observation(pid)).resource.logical_id]
    kept.append(post(api, observation(pid)))
    assert heart_rates(api, pid) == sorted(kept)


def test_a_statement_whose_prepare_failed_is_prepared_again(transactional_db):
    """A PREPARE that PostgreSQL refused (the transaction was aborted) prepared nothing."""
    sql = "SELECT %s::int + 1"
    connection.close()
    with transaction.atomic():
        with connection.cursor() as cursor:
            with pytest.raises(DatabaseError):
                cursor.execute("SELECT 1 / 0")
            with pytest.raises(DatabaseError, match="aborted"):
                prepared.execute(cursor, sql, [1])
        transaction.set_rollback(True)
    # In a transaction, where a statement wrongly thought prepared could not be retried.
    with transaction.atomic(), connection.cursor() as cursor:
        prepared.execute(cursor, sql, [41])
        assert cursor.fetchone() == (42,)
        prepared.execute(cursor, sql, [1])
        assert cursor.fetchone() == (2,)


def test_creates_go_on_after_the_session_discards_its_statements(transactional_db, api):
    pid = post(api, patient("D-0"))
    first = post(api, observation(pid))
    with connection.cursor() as cursor:
        cursor.execute("DISCARD ALL")  # as a pooler's reset query does
    second = post(api, observation(pid))
    third = post(api, patient("D-1"))
    assert heart_rates(api, pid) == sorted([first, second])
    assert search(api, f"/fhir/Patient?identifier={SYSTEM}|D-1") == [third]


def test_a_discarded_statement_in_a_transaction_fails_it_and_the_next_create_works(
    transactional_db, api
):
    pid = post(api, patient("T-0"))
    post(api, observation(pid))
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    with pytest.raises(DatabaseError), transaction.atomic():
        services.create("Observation", observation(pid))
    kept = post(api, observation(pid))
    assert kept in heart_rates(api, pid)


def prepared_on_server() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'dth%%'")
        return cursor.fetchone()[0]


def test_at_most_max_statements_stay_prepared(transactional_db, api, monkeypatch):
    monkeypatch.setattr(prepared, "MAX_STATEMENTS", 2)
    connection.close()
    pid = post(api, patient("M-0"))
    # Three shapes of the statement: a Patient, an Observation, an Observation without a value.
    bare = {k: v for k, v in observation(pid).items() if k not in ("valueQuantity", "component")}
    made = [post(api, observation(pid)), post(api, bare), post(api, observation(pid))]
    made.append(post(api, bare))
    again = post(api, patient("M-1"))
    assert prepared_on_server() == 2
    assert heart_rates(api, pid) == sorted(made)
    assert search(api, f"/fhir/Patient?identifier={SYSTEM}|M-1") == [again]


def test_off_sends_plain_statements(db, settings):
    settings.DB_PREPARED_STATEMENTS = False
    pid = create(patient("O-0"))
    with CaptureQueriesContext(connection) as queries:
        create(patient("O-1"))
        create(observation(pid))
    assert statements(queries) == ["WITH", "WITH"]


def test_quoted_literals_and_comments_are_prepared_as_written(db):
    """$lastn's statement holds '' and 'Observation' literals, and a comment with a quote."""
    sql = (
        "SELECT %s::text, '' AS empty, 'it''s' AS quote, 'x%%' AS percent"
        " -- the columns' names\n, %s::int"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, ["a", 2])
        plain = cursor.fetchone()
    for _ in range(2):
        # a cursor made inside the context: the statements it sends are captured
        with CaptureQueriesContext(connection) as queries, connection.cursor() as cursor:
            prepared.execute(cursor, sql, ["a", 2])
            got = cursor.fetchone()
        assert got == plain == ("a", "", "it's", "x%", 2)
        assert statements(queries)[-1] == "EXECUTE"


@pytest.mark.parametrize(
    "sql", ["SELECT $$x$$, %s::int", "SELECT E'x', %s::int", "SELECT 'x' /* a */, %s::int"]
)
def test_statements_it_cannot_prepare_are_sent_as_they_are(db, sql):
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries, connection.cursor() as cursor:
            prepared.execute(cursor, sql, [7])
            assert cursor.fetchone() == ("x", 7)
        assert statements(queries) == ["SELECT"]
