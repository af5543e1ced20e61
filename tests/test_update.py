"""update: PUT [base]/[type]/[id] (hl7.org/fhir/R4B/http.html#update, #concurrency)."""

from __future__ import annotations

import pytest

from fhir_api.models import Resource, ResourceVersion


@pytest.fixture
def user(django_user_model):
    """A user without a password: the API authenticates by token, and hashing costs 0.3 s."""
    return django_user_model.objects.create_user("clinician")


def patient(pid: str | None = None, family: str = "Smith") -> dict:
    body = {"resourceType": "Patient", "name": [{"family": family}]}
    if pid is not None:
        body["id"] = pid
    return body


@pytest.fixture
def pid(api) -> str:
    r = api.fhir("POST", "/fhir/Patient", patient())
    assert r.status_code == 201
    return r.json_body["id"]


def assert_outcome(response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.content
    assert response.json_body["resourceType"] == "OperationOutcome"
    if code is not None:
        assert response.json_body["issue"][0]["code"] == code


def family(api, pid: str) -> str:
    return api.fhir("GET", f"/fhir/Patient/{pid}").json_body["name"][0]["family"]


def test_update_makes_a_new_version(api, pid):
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "Jones"))
    assert r.status_code == 200, r.content
    assert r["ETag"] == 'W/"2"'
    assert r["Location"] == f"http://testserver/fhir/Patient/{pid}/_history/2"
    assert r["Last-Modified"].endswith(" GMT")
    assert r.json_body["meta"]["versionId"] == "2"
    assert r.json_body["name"] == [{"family": "Jones"}]
    assert family(api, pid) == "Jones"
    v1 = api.fhir("GET", f"/fhir/Patient/{pid}/_history/1").json_body
    assert v1["name"] == [{"family": "Smith"}]
    assert v1["meta"]["lastUpdated"] <= r.json_body["meta"]["lastUpdated"]


def test_update_replaces_the_whole_resource(api):
    body = {**patient(), "gender": "female", "birthDate": "1970-01-01"}
    pid = api.fhir("POST", "/fhir/Patient", body).json_body["id"]
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "Smith"))
    assert r.status_code == 200
    current = api.fhir("GET", f"/fhir/Patient/{pid}").json_body
    assert "gender" not in current
    assert "birthDate" not in current


def test_each_update_increments_the_version(api, pid):
    for version in (2, 3, 4):
        r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, f"V{version}"))
        assert r["ETag"] == f'W/"{version}"'
    assert ResourceVersion.objects.filter(logical_id=pid).count() == 4


def test_prefer_return_minimal_on_update(api, pid):
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "Jones"), HTTP_PREFER="return=minimal")
    assert r.status_code == 200
    assert r.content == b""
    assert r["ETag"] == 'W/"2"'


def test_update_with_a_new_client_id_creates_the_resource(api):
    r = api.fhir("PUT", "/fhir/Patient/client-chosen-1", patient("client-chosen-1"))
    assert r.status_code == 201, r.content
    assert r["Location"] == "http://testserver/fhir/Patient/client-chosen-1/_history/1"
    assert r["ETag"] == 'W/"1"'
    assert r.json_body["id"] == "client-chosen-1"
    assert r.json_body["meta"]["versionId"] == "1"
    assert family(api, "client-chosen-1") == "Smith"


def test_the_same_id_on_another_type_is_another_resource(api, pid):
    obs = {
        "resourceType": "Observation",
        "id": pid,
        "status": "final",
        "code": {"text": "x"},
    }
    r = api.fhir("PUT", f"/fhir/Observation/{pid}", obs)
    assert r.status_code == 201
    assert family(api, pid) == "Smith"


def test_an_id_in_the_body_that_differs_from_the_url_is_400(api, pid):
    assert_outcome(api.fhir("PUT", f"/fhir/Patient/{pid}", patient("other-id")), 400, "invalid")
    assert family(api, pid) == "Smith"
    assert not Resource.objects.filter(logical_id="other-id").exists()


def test_an_update_without_an_id_in_the_body_is_400(api, pid):
    assert_outcome(api.fhir("PUT", f"/fhir/Patient/{pid}", patient()), 400, "invalid")
    assert ResourceVersion.objects.filter(logical_id=pid).count() == 1


def test_a_body_of_another_type_is_400(api, pid):
    body = {"resourceType": "Observation", "id": pid, "status": "final", "code": {"text": "x"}}
    assert_outcome(api.fhir("PUT", f"/fhir/Patient/{pid}", body), 400)


def test_an_invalid_resource_is_422_and_nothing_changes(api, pid):
    body = {**patient(pid), "birthDate": "yesterday"}
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", body)
    assert_outcome(r, 422)
    assert r.json_body["issue"][0]["expression"] == ["Patient.birthDate"]
    assert ResourceVersion.objects.filter(logical_id=pid).count() == 1


def test_an_invalid_id_in_the_url_is_400(api):
    assert_outcome(api.fhir("PUT", "/fhir/Patient/bad_id", patient("bad_id")), 400)
    assert Resource.objects.count() == 0


def test_update_of_an_unknown_type_is_404(api):
    body = {"resourceType": "Spaceship", "id": "x"}
    assert_outcome(api.fhir("PUT", "/fhir/Spaceship/x", body), 404)


@pytest.mark.parametrize("etag", ['W/"1"', '"1"'])
def test_if_match_the_current_version_updates(api, pid, etag):
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "Jones"), HTTP_IF_MATCH=etag)
    assert r.status_code == 200, r.content
    assert r["ETag"] == 'W/"2"'


def test_if_match_a_stale_version_is_412_and_nothing_changes(api, pid):
    api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "Jones"))
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "Lost"), HTTP_IF_MATCH='W/"1"')
    assert_outcome(r, 412, "conflict")
    assert family(api, pid) == "Jones"
    current = api.fhir("GET", f"/fhir/Patient/{pid}")
    assert current["ETag"] == 'W/"2"'
    assert ResourceVersion.objects.filter(logical_id=pid).count() == 2


def test_if_match_on_a_resource_that_does_not_exist_is_412(api):
    r = api.fhir("PUT", "/fhir/Patient/new-one", patient("new-one"), HTTP_IF_MATCH='W/"1"')
    assert_outcome(r, 412)
    assert not Resource.objects.filter(logical_id="new-one").exists()


def test_if_match_that_is_not_a_version_is_400(api, pid):
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "Jones"), HTTP_IF_MATCH="yesterday")
    assert_outcome(r, 400)
    assert family(api, pid) == "Smith"


def test_update_after_delete_resurrects_the_resource_with_201(api, pid):
    assert api.fhir("DELETE", f"/fhir/Patient/{pid}").status_code == 204
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "Lazarus"))
    assert r.status_code == 201, r.content
    assert r["ETag"] == 'W/"3"'
    assert r["Location"] == f"http://testserver/fhir/Patient/{pid}/_history/3"
    read = api.fhir("GET", f"/fhir/Patient/{pid}")
    assert read.status_code == 200
    assert read.json_body["name"] == [{"family": "Lazarus"}]
    assert read.json_body["meta"]["versionId"] == "3"
    history = api.fhir("GET", f"/fhir/Patient/{pid}/_history").json_body
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "DELETE", "POST"]


def test_if_match_on_a_deleted_resource_is_412(api, pid):
    api.fhir("DELETE", f"/fhir/Patient/{pid}")
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid), HTTP_IF_MATCH='W/"2"')
    assert_outcome(r, 412)
    assert api.fhir("GET", f"/fhir/Patient/{pid}").status_code == 410


def test_decimals_keep_their_text_on_update(api):
    text = (
        '{"resourceType":"Observation","id":"obs-1","status":"final","code":{"text":"x"},'
        '"valueQuantity":{"value":1.000E+2,"unit":"kg"},"referenceRange":[{"low":{"value":72.50}}]}'
    )
    r = api.fhir("PUT", "/fhir/Observation/obs-1", text)
    assert r.status_code == 201
    read = api.fhir("GET", "/fhir/Observation/obs-1")
    assert b'"value":1.000E+2' in read.content
    assert b'"value":72.50' in read.content
