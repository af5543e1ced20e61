"""The bulk write path (fhir_api.bulk) leaves exactly the rows the normal write path leaves.

Every official HL7 example is written once through ``services.create`` and once through
``bulk.create_many`` (COPY on PostgreSQL, bulk_create on SQLite); the current rows, the versions,
the content (but for the server's id and lastUpdated) and every search-index row must agree.
Then bulk-written resources are found by search and read over the API, and a failing batch
writes nothing.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhir_api import bulk, json_io, services
from fhir_api.exceptions import Conflict, FHIRError
from fhir_api.models import INDEX_MODELS, Resource, ResourceVersion, TokenIndex
from fhir_api.search.extract import COLUMNS
from fhir_api.signals import resource_committed, resources_committed

from .search_support import VITAL_SIGNS

EXAMPLES = sorted((Path(__file__).parent / "data" / "hl7-examples").glob("*.json"))
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def examples() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in EXAMPLES:
        data = json_io.loads(path.read_text())
        out.append((data["resourceType"], data))
    return out


def vital(patient: str, code: str, value: str, unit: str, when: str, **extra) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": VITAL_SIGNS,
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": Decimal(value), "unit": unit, "system": UCUM, "code": unit},
        **extra,
    }


# Text COPY must escape: backslashes, tabs, newlines and carriage returns, in content and in
# index values alike; and non-ASCII text must arrive intact.
AWKWARD = [
    (
        "Patient",
        {
            "resourceType": "Patient",
            "id": "client-chosen",
            "name": [{"family": "O\\Brien\tTab", "given": ["Zoë\nNew", "Crlf\r\nx"]}],
            "identifier": [{"system": "urn:x\\y", "value": "a\tb"}],
            "birthDate": "1970-01-01",
        },
    ),
    (
        "Observation",
        vital(
            "p1",
            "8867-4",
            "72.50",
            "/min",
            "2026-01-02T03:04:05.123+02:00",
            note=[{"text": 'quote " back \\ tab \t nl \n end'}],
        ),
    ),
    (
        "Observation",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
            "subject": {"reference": "Patient/p1"},
            "effectivePeriod": {"start": "2026-03"},
            "component": [
                {
                    "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                    "valueQuantity": {
                        "value": Decimal("1E+400"),
                        "unit": "mmHg",
                        "system": UCUM,
                        "code": "mm[Hg]",
                    },
                },
                {
                    "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                    "valueQuantity": {
                        "value": Decimal("80"),
                        "unit": "mmHg",
                        "system": UCUM,
                        "code": "mm[Hg]",
                    },
                },
            ],
        },
    ),
]


def stored(rows: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """What is in the database for each written resource, without the server's id and time."""
    out = []
    for resource_type, logical_id, pk in rows:
        resource = Resource.objects.get(pk=pk)
        assert (resource.resource_type, resource.logical_id) == (resource_type, logical_id)
        versions = list(ResourceVersion.objects.filter(resource_id=pk))
        content = json_io.loads(resource.content)
        assert content.pop("id") == logical_id
        assert content["meta"].pop("lastUpdated")
        index: Counter = Counter()
        for model in INDEX_MODELS:
            columns = ("resource_type", "param", "patient", *COLUMNS[model])
            for values in model.objects.filter(resource_id=pk).values_list(*columns):
                # A Patient is in its own compartment: its id is the server's.
                values = tuple("<self>" if v == logical_id else v for v in values)
                index[(model.__name__, values)] += 1
        out.append(
            {
                "resource": (resource.version_id, resource.deleted),
                "content": json_io.dumps(content),
                "versions": [
                    (v.resource_type, v.logical_id == logical_id, v.version_id, v.deleted, v.method)
                    for v in versions
                ],
                "version_content_is_current": [v.content == resource.content for v in versions],
                "version_time_is_current": [
                    v.last_updated == resource.last_updated for v in versions
                ],
                "index": index,
            }
        )
    return out


def created_through_services(items) -> list[tuple[str, str, int]]:
    out = []
    for resource_type, data in items:
        row = services.create(resource_type, data).resource
        out.append((row.resource_type, row.logical_id, row.pk))
    return out


@pytest.mark.django_db
def test_bulk_leaves_exactly_the_rows_of_the_normal_write_path():
    items = examples() + AWKWARD
    by_services = stored(created_through_services(items))
    written = bulk.create_many(items)
    assert [w.resource_type for w in written] == [rt for rt, _d in items]
    assert all(w.version_id == 1 for w in written)
    by_bulk = stored([(w.resource_type, w.logical_id, w.pk) for w in written])
    assert len(by_bulk) == len(by_services) == len(items)
    for (rt, data), expected, got in zip(items, by_services, by_bulk, strict=True):
        name = f"{rt}/{data.get('id')}"
        assert got["content"] == expected["content"], name
        assert got["index"] == expected["index"], name
        assert got == expected, name
    # Something was indexed for nearly every example: the comparison is not of empty sets.
    assert sum(bool(s["index"]) for s in by_bulk) > 0.9 * len(items)


@pytest.mark.django_db
def test_resources_sharing_parts_are_stored_as_each_would_be_alone():
    """Device readings share their category, code and range objects between Observations;
    bulk serialises such a shared part once per batch, and the stored text is still exactly
    what the normal write path stores for each (a shared meta is extended per resource)."""
    category = [{"coding": [{"system": "urn:x\\y", "code": "tab\there", "display": "Zoë"}]}]
    code = {"coding": [{"system": LOINC, "code": "8867-4"}], "text": 'quote " nl \n'}
    meta = {"tag": [{"system": "urn:t", "code": "shared"}]}
    items = [
        (
            "Observation",
            {
                **vital("p1", "8867-4", value, "/min", f"2026-01-02T03:04:0{n}Z"),
                **({"meta": meta} if n % 2 else {}),  # with a meta of their own, and without
                "category": category,
                "code": code,
            },
        )
        for n, value in enumerate(["72.50", "80", "1E+2", "0.0000001"])
    ]
    by_services = stored(created_through_services(items))
    written = bulk.create_many(items)
    by_bulk = stored([(w.resource_type, w.logical_id, w.pk) for w in written])
    assert by_bulk == by_services
    assert meta == {"tag": [{"system": "urn:t", "code": "shared"}]}  # not changed in place
    for w, (_rt, data) in zip(written, items, strict=True):
        content = json_io.loads(Resource.objects.get(pk=w.pk).content)
        assert content["category"] == category and content["code"] == code
        assert content["meta"].get("tag") == data.get("meta", {}).get("tag")
        assert content["meta"]["versionId"] == "1"
        assert str(content["valueQuantity"]["value"]) == str(data["valueQuantity"]["value"])


@pytest.mark.django_db
def test_bulk_rows_are_found_by_search_and_read(api):
    (patient,) = bulk.create_many(
        [{"resourceType": "Patient", "name": [{"family": "Bulkley", "given": ["Ada"]}]}]
    )
    items = [
        vital(patient.logical_id, "8867-4", "72.50", "/min", "2026-01-02T03:04:05Z"),
        vital(patient.logical_id, "8867-4", "130", "/min", "2026-01-03T03:04:05Z"),
        vital(patient.logical_id, "9279-1", "16", "/min", "2026-01-04T03:04:05Z"),
    ]
    written = bulk.create_many(items)
    heart = {w.logical_id for w in written[:2]}

    found = api.fhir(
        "GET",
        f"/fhir/Observation?patient={patient.logical_id}&code={LOINC}|8867-4"
        "&date=ge2026-01-01&date=lt2026-02-01",
    )
    assert found.status_code == 200, found.content
    assert found.json_body["total"] == 2
    assert {e["resource"]["id"] for e in found.json_body["entry"]} == heart

    fast = api.fhir("GET", f"/fhir/Observation?code-value-quantity={LOINC}|8867-4$gt120")
    assert [e["resource"]["id"] for e in fast.json_body["entry"]] == [written[1].logical_id]

    has = api.fhir("GET", f"/fhir/Patient?_has:Observation:patient:code={LOINC}|9279-1")
    assert [e["resource"]["id"] for e in has.json_body["entry"]] == [patient.logical_id]

    by_name = api.fhir("GET", "/fhir/Patient?name=bulkley")
    assert [e["resource"]["id"] for e in by_name.json_body["entry"]] == [patient.logical_id]

    read = api.fhir("GET", f"/fhir/Observation/{written[0].logical_id}")
    assert read.status_code == 200
    assert read["ETag"] == 'W/"1"'
    assert b'"value":72.50' in read.content
    assert read.json_body["meta"]["versionId"] == "1"

    history = api.fhir("GET", f"/fhir/Observation/{written[0].logical_id}/_history")
    assert [e["request"]["method"] for e in history.json_body["entry"]] == ["POST"]

    # The bulk rows behave as any other: an update gives version 2 and re-indexes.
    updated = services.update(
        "Observation",
        written[0].logical_id,
        {**items[0], "id": written[0].logical_id, "status": "amended"},
    )
    assert updated.resource.version_id == 2
    assert api.fhir("GET", "/fhir/Observation?status=amended").json_body["total"] == 1


@pytest.mark.django_db
def test_kept_ids_are_used_and_references_between_them_resolve(api):
    written = bulk.create_many(
        [
            {"resourceType": "Patient", "id": "pat-1", "gender": "female"},
            vital("pat-1", "8867-4", "60", "/min", "2026-01-02T03:04:05Z") | {"id": "obs-1"},
        ],
        keep_ids=True,
    )
    assert [(w.resource_type, w.logical_id) for w in written] == [
        ("Patient", "pat-1"),
        ("Observation", "obs-1"),
    ]
    found = api.fhir("GET", "/fhir/Observation?patient=pat-1&_include=Observation:subject")
    ids = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in found.json_body["entry"]]
    assert ids == [("Observation", "obs-1"), ("Patient", "pat-1")]


@pytest.mark.django_db
def test_a_batch_that_fails_writes_nothing():
    bulk.create_many([{"resourceType": "Patient", "id": "taken"}], keep_ids=True)
    before = (Resource.objects.count(), ResourceVersion.objects.count())

    with pytest.raises(bulk.BulkInvalid) as invalid:
        bulk.create_many(
            [
                {"resourceType": "Patient", "gender": "female"},
                {"resourceType": "Patient", "gender": 12},
                ("Observation", {"resourceType": "Patient"}),
                {"resourceType": "NoSuchType"},
            ]
        )
    assert [position for position, _e in invalid.value.rejected] == [1, 2, 3]
    assert invalid.value.status == 422
    assert all(i.diagnostics.startswith("entry ") for i in invalid.value.issues)

    with pytest.raises(Conflict):
        bulk.create_many(
            [{"resourceType": "Patient", "id": "new"}, {"resourceType": "Patient", "id": "taken"}],
            keep_ids=True,
        )
    with pytest.raises(Conflict):
        bulk.create_many(
            [
                {"resourceType": "Patient", "id": "twice"},
                {"resourceType": "Patient", "id": "twice"},
            ],
            keep_ids=True,
        )
    with pytest.raises(FHIRError):  # kept ids must be valid ids
        bulk.create_many([{"resourceType": "Patient", "id": "no spaces"}], keep_ids=True)
    assert (Resource.objects.count(), ResourceVersion.objects.count()) == before
    assert bulk.create_many([]) == []


@pytest.mark.django_db
def test_unvalidated_batches_are_still_checked_for_their_type():
    with pytest.raises(bulk.BulkInvalid):
        bulk.create_many([("Observation", {"resourceType": "Patient"})], validate=False)
    # Not validated: a wrong datatype goes in (the caller vouched for the data).
    (written,) = bulk.create_many([{"resourceType": "Patient", "gender": 12}], validate=False)
    assert Resource.objects.filter(pk=written.pk).exists()


@pytest.mark.django_db
def test_signals_are_sent_per_resource_and_per_batch_after_commit(
    django_capture_on_commit_callbacks,
):
    singles, batches = [], []

    def on_single(sender, **kwargs):
        singles.append(kwargs)

    def on_batch(sender, **kwargs):
        batches.append(kwargs["resources"])

    resource_committed.connect(on_single)
    resources_committed.connect(on_batch)
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            written = bulk.create_many(
                [{"resourceType": "Patient"}, {"resourceType": "Patient", "active": True}]
            )
            assert singles == [] and batches == []  # nothing before the commit
        assert len(callbacks) == 1
    finally:
        resource_committed.disconnect(on_single)
        resources_committed.disconnect(on_batch)
    assert [(s["resource_type"], s["logical_id"], s["version_id"]) for s in singles] == [
        ("Patient", w.logical_id, 1) for w in written
    ]
    assert all(s["deleted"] is False and s["bulk"] is True for s in singles)
    assert batches == [written]


@pytest.mark.django_db
def test_a_created_patient_is_its_own_compartment_under_its_stored_id():
    """A create ignores the body's id; the index rows' patient column must too."""
    body = {"resourceType": "Patient", "id": "from-the-client", "gender": "female"}
    by_services = services.create("Patient", body).resource
    (by_bulk,) = bulk.create_many([body])
    for pk, logical_id in (
        (by_services.pk, by_services.logical_id),
        (by_bulk.pk, by_bulk.logical_id),
    ):
        assert logical_id != "from-the-client"
        assert set(TokenIndex.objects.filter(resource_id=pk).values_list("patient", flat=True)) == {
            logical_id
        }


@pytest.mark.django_db
def test_the_garbage_collector_is_back_on_after_a_batch_even_a_failed_one():
    """A batch is built with Python's cyclic GC off (``bulk.gc_paused``); it must never stay
    off after it, and a caller that had turned it off itself finds it still off."""
    import gc

    assert gc.isenabled()
    bulk.create_many([vital("p1", "8867-4", "70", "/min", "2026-01-02T03:04:05Z")])
    assert gc.isenabled()
    with pytest.raises(bulk.BulkInvalid):
        bulk.create_many([{"resourceType": "Observation", "status": "not-a-status"}])
    assert gc.isenabled()
    gc.disable()
    try:
        bulk.create_many([vital("p1", "8867-4", "71", "/min", "2026-01-02T03:04:06Z")])
        assert not gc.isenabled()
    finally:
        gc.enable()
