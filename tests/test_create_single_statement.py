"""A create outside any transaction is one statement on PostgreSQL (resource, version and index
rows together, committed on their own: no BEGIN/COMMIT round trips), and leaves the same rows
and signal as every write (hl7.org/fhir/R4B/http.html#create)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fhir_api.models import Resource, ResourceVersion, TokenIndex
from fhir_api.signals import resource_committed

SYSTEM = "https://clouddth.example/patient-id"


def patient(mrn: str) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": mrn}],
        "name": [{"family": "Single"}],
    }


@pytest.fixture
def received():
    seen: list[dict] = []

    def receiver(sender, **kwargs):
        seen.append(kwargs)

    resource_committed.connect(receiver, dispatch_uid="test_create_single_statement")
    yield seen
    resource_committed.disconnect(dispatch_uid="test_create_single_statement")


def test_a_create_is_committed_whole_with_one_statement_on_postgresql(
    transactional_db, token, received
):
    from tests.conftest import FHIRClient

    api = FHIRClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.fhir("POST", "/fhir/Patient", patient("S-0")).status_code == 201  # token cached
    with CaptureQueriesContext(connection) as queries:
        r = api.fhir("POST", "/fhir/Patient", patient("S-1"))
    assert r.status_code == 201, r.content
    pid = r.json_body["id"]
    if connection.vendor == "postgresql":
        # The statement the first create prepared on this connection (fhir_api.prepared).
        assert [q["sql"].split()[0] for q in queries.captured_queries] == ["EXECUTE"]
    row = Resource.objects.get(resource_type="Patient", logical_id=pid)
    assert row.version_id == 1 and not row.deleted
    assert ResourceVersion.objects.filter(resource=row, version_id=1, method="POST").exists()
    assert TokenIndex.objects.filter(resource_id=row.pk, param="identifier", code="S-1").exists()
    # Searchable at once, from another connection's point of view too (it is committed).
    found = api.fhir("GET", f"/fhir/Patient?identifier={SYSTEM}|S-1").json_body
    assert [e["resource"]["id"] for e in found["entry"]] == [pid]
    mine = [k for k in received if k["logical_id"] == pid]
    assert len(mine) == 1
    assert mine[0]["version_id"] == 1 and mine[0]["deleted"] is False
    assert mine[0]["index"].patient == pid


def test_the_signal_carries_the_subject_of_an_observation(
    db, received, django_capture_on_commit_callbacks
):
    from fhir_api import services
    from fhir_api.models import ReferenceIndex

    pid = services.create("Patient", patient("S-2")).resource.logical_id
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{pid}"},
    }
    # Inside the test's transaction on_commit hooks wait; run them as a commit would.
    with django_capture_on_commit_callbacks(execute=True):
        services.create("Observation", body)
    sent = [k for k in received if k["resource_type"] == "Observation"]
    assert len(sent) == 1
    subjects = [
        r[2]
        for r in sent[0]["index"].rows[ReferenceIndex]
        if r[0] == "subject" and r[1] == "Patient"
    ]
    assert subjects == [pid]
