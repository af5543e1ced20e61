"""delete: DELETE [base]/[type]/[id] (hl7.org/fhir/R4B/http.html#delete)."""

from __future__ import annotations

import pytest

from fhir_api.models import Resource, ResourceVersion


@pytest.fixture
def user(django_user_model):
    """A user without a password: the API authenticates by token, and hashing costs 0.3 s."""
    return django_user_model.objects.create_user("clinician")


@pytest.fixture
def pid(api) -> str:
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:mrn", "value": "D-1"}],
        "name": [{"family": "Smith"}],
    }
    r = api.fhir("POST", "/fhir/Patient", body)
    assert r.status_code == 201
    return r.json_body["id"]


def test_delete_is_204_and_a_read_is_then_410(api, pid):
    r = api.fhir("DELETE", f"/fhir/Patient/{pid}")
    assert r.status_code == 204
    assert r.content == b""
    gone = api.fhir("GET", f"/fhir/Patient/{pid}")
    assert gone.status_code == 410
    assert gone.json_body["resourceType"] == "OperationOutcome"
    assert gone.json_body["issue"][0]["code"] == "deleted"


def test_history_keeps_the_versions_and_a_tombstone(api, pid):
    api.fhir("DELETE", f"/fhir/Patient/{pid}")
    history = api.fhir("GET", f"/fhir/Patient/{pid}/_history")
    assert history.status_code == 200
    entries = history.json_body["entry"]
    assert len(entries) == 2
    tombstone, created = entries
    assert tombstone["request"] == {"method": "DELETE", "url": f"Patient/{pid}"}
    assert "resource" not in tombstone
    assert tombstone["response"]["etag"] == 'W/"2"'
    assert tombstone["response"]["status"].startswith("204")
    assert created["resource"]["name"] == [{"family": "Smith"}]
    assert api.fhir("GET", f"/fhir/Patient/{pid}/_history/1").status_code == 200


def test_a_deleted_resource_is_not_found_by_search(api, pid):
    api.fhir("DELETE", f"/fhir/Patient/{pid}")
    for query in (f"_id={pid}", "identifier=urn:test:mrn|D-1"):
        bundle = api.fhir("GET", f"/fhir/Patient?{query}").json_body
        assert bundle["total"] == 0, query
        assert "entry" not in bundle  # no empty arrays in FHIR JSON


def test_delete_of_an_unknown_resource_is_204_and_writes_nothing(api):
    r = api.fhir("DELETE", "/fhir/Patient/never-existed")
    assert r.status_code == 204
    assert not Resource.objects.filter(logical_id="never-existed").exists()
    assert not ResourceVersion.objects.exists()


def test_deleting_twice_is_204_and_writes_one_tombstone(api, pid):
    assert api.fhir("DELETE", f"/fhir/Patient/{pid}").status_code == 204
    assert api.fhir("DELETE", f"/fhir/Patient/{pid}").status_code == 204
    assert ResourceVersion.objects.filter(logical_id=pid).count() == 2


def test_if_match_the_current_version_deletes(api, pid):
    r = api.fhir("DELETE", f"/fhir/Patient/{pid}", HTTP_IF_MATCH='W/"1"')
    assert r.status_code == 204
    assert api.fhir("GET", f"/fhir/Patient/{pid}").status_code == 410


def test_if_match_a_stale_version_is_412_and_nothing_is_deleted(api, pid):
    body = {"resourceType": "Patient", "id": pid, "name": [{"family": "Jones"}]}
    api.fhir("PUT", f"/fhir/Patient/{pid}", body)
    r = api.fhir("DELETE", f"/fhir/Patient/{pid}", HTTP_IF_MATCH='W/"1"')
    assert r.status_code == 412
    assert r.json_body["resourceType"] == "OperationOutcome"
    assert r.json_body["issue"][0]["code"] == "conflict"
    read = api.fhir("GET", f"/fhir/Patient/{pid}")
    assert read.status_code == 200
    assert read["ETag"] == 'W/"2"'


def test_delete_of_an_unknown_type_is_404(api):
    assert api.fhir("DELETE", "/fhir/Spaceship/x").status_code == 404


def test_delete_with_an_invalid_id_is_400(api):
    assert api.fhir("DELETE", "/fhir/Patient/not_valid").status_code == 400


def test_delete_only_deletes_that_resource(api, pid):
    other = api.fhir("POST", "/fhir/Patient", {"resourceType": "Patient"}).json_body["id"]
    api.fhir("DELETE", f"/fhir/Patient/{pid}")
    assert api.fhir("GET", f"/fhir/Patient/{other}").status_code == 200
