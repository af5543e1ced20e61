"""patch: PATCH [base]/[type]/[id] with a JSON Patch (hl7.org/fhir/R4B/http.html#patch)."""

from __future__ import annotations

import pytest

from fhir_api.models import ResourceVersion

JSON_PATCH = "application/json-patch+json"


@pytest.fixture
def user(django_user_model):
    """A user without a password: the API authenticates by token, and hashing costs 0.3 s."""
    return django_user_model.objects.create_user("clinician")


@pytest.fixture
def pid(api) -> str:
    body = {
        "resourceType": "Patient",
        "active": True,
        "name": [{"family": "Smith", "given": ["Ann"]}],
        "birthDate": "1970-01-01",
    }
    r = api.fhir("POST", "/fhir/Patient", body)
    assert r.status_code == 201
    return r.json_body["id"]


def patch(api, pid: str, operations, **headers):
    return api.fhir("PATCH", f"/fhir/Patient/{pid}", operations, content_type=JSON_PATCH, **headers)


def assert_unchanged(api, pid: str) -> None:
    r = api.fhir("GET", f"/fhir/Patient/{pid}")
    assert r["ETag"] == 'W/"1"'
    assert r.json_body["name"] == [{"family": "Smith", "given": ["Ann"]}]
    assert ResourceVersion.objects.filter(logical_id=pid).count() == 1


def assert_outcome(response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.content
    assert response.json_body["resourceType"] == "OperationOutcome"
    if code is not None:
        assert response.json_body["issue"][0]["code"] == code


def test_json_patch_makes_a_new_version(api, pid):
    ops = [
        {"op": "replace", "path": "/name/0/family", "value": "Jones"},
        {"op": "add", "path": "/gender", "value": "female"},
        {"op": "remove", "path": "/active"},
    ]
    r = patch(api, pid, ops)
    assert r.status_code == 200, r.content
    assert r["ETag"] == 'W/"2"'
    assert r["Location"] == f"http://testserver/fhir/Patient/{pid}/_history/2"
    body = r.json_body
    assert body["meta"]["versionId"] == "2"
    assert body["name"] == [{"family": "Jones", "given": ["Ann"]}]
    assert body["gender"] == "female"
    assert "active" not in body
    assert body["birthDate"] == "1970-01-01"
    assert api.fhir("GET", f"/fhir/Patient/{pid}").json_body == body
    history = api.fhir("GET", f"/fhir/Patient/{pid}/_history").json_body
    assert [e["request"]["method"] for e in history["entry"]] == ["PATCH", "POST"]


def test_patch_with_a_passing_test_operation(api, pid):
    ops = [
        {"op": "test", "path": "/name/0/family", "value": "Smith"},
        {"op": "replace", "path": "/name/0/family", "value": "Jones"},
    ]
    assert patch(api, pid, ops).status_code == 200


def test_patch_keeps_decimal_text(api):
    text = (
        '{"resourceType":"Observation","status":"preliminary","code":{"text":"weight"},'
        '"valueQuantity":{"value":72.50,"unit":"kg"}}'
    )
    oid = api.fhir("POST", "/fhir/Observation", text).json_body["id"]
    ops = '[{"op":"replace","path":"/status","value":"final"},{"op":"add","path":"/valueQuantity/value","value":1.000E+2}]'
    r = api.fhir("PATCH", f"/fhir/Observation/{oid}", ops, content_type=JSON_PATCH)
    assert r.status_code == 200, r.content
    assert b'"value":1.000E+2' in api.fhir("GET", f"/fhir/Observation/{oid}").content
    v1 = api.fhir("GET", f"/fhir/Observation/{oid}/_history/1")
    assert b'"value":72.50' in v1.content


@pytest.mark.parametrize("etag", ['W/"1"', '"1"'])
def test_if_match_the_current_version_patches(api, pid, etag):
    ops = [{"op": "replace", "path": "/name/0/family", "value": "Jones"}]
    assert patch(api, pid, ops, HTTP_IF_MATCH=etag).status_code == 200


def test_if_match_a_stale_version_is_412(api, pid):
    ops = [{"op": "replace", "path": "/name/0/family", "value": "Jones"}]
    assert_outcome(patch(api, pid, ops, HTTP_IF_MATCH='W/"7"'), 412, "conflict")
    assert_unchanged(api, pid)


def test_a_failing_test_operation_is_422_and_nothing_changes(api, pid):
    ops = [
        {"op": "test", "path": "/name/0/family", "value": "Jones"},
        {"op": "replace", "path": "/name/0/family", "value": "Brown"},
    ]
    assert_outcome(patch(api, pid, ops), 422)
    assert_unchanged(api, pid)


def test_an_operation_on_a_missing_path_is_422(api, pid):
    assert_outcome(patch(api, pid, [{"op": "remove", "path": "/telecom/0"}]), 422)
    assert_unchanged(api, pid)


@pytest.mark.parametrize(
    "body",
    [
        '[{"op": "frobnicate", "path": "/active"}]',
        '[{"path": "/active", "value": false}]',
        '[{"op": "replace", "value": false}]',
        '{"op": "replace", "path": "/active", "value": false}',
        '["replace"]',
        '[{"op": "replace", "path": "/active", "value": fal',
    ],
)
def test_a_malformed_patch_is_400(api, pid, body):
    assert_outcome(patch(api, pid, body), 400)
    assert_unchanged(api, pid)


def test_a_patch_that_changes_the_id_is_422(api, pid):
    assert_outcome(patch(api, pid, [{"op": "replace", "path": "/id", "value": "other"}]), 422)
    assert_unchanged(api, pid)


def test_a_patch_that_changes_the_resource_type_is_422(api, pid):
    ops = [{"op": "replace", "path": "/resourceType", "value": "Person"}]
    assert_outcome(patch(api, pid, ops), 422)
    assert_unchanged(api, pid)


def test_a_patch_that_leaves_an_invalid_resource_is_422_with_the_location(api, pid):
    r = patch(api, pid, [{"op": "replace", "path": "/birthDate", "value": "last tuesday"}])
    assert_outcome(r, 422)
    assert ["Patient.birthDate"] in [i.get("expression") for i in r.json_body["issue"]]
    assert_unchanged(api, pid)


@pytest.mark.parametrize("content_type", ["application/xml", "text/plain", "application/fhir+xml"])
def test_patch_with_a_content_type_that_is_not_json_patch_is_415(api, pid, content_type):
    body = '[{"op": "replace", "path": "/active", "value": false}]'
    r = api.fhir("PATCH", f"/fhir/Patient/{pid}", body, content_type=content_type)
    assert_outcome(r, 415, "not-supported")
    assert_unchanged(api, pid)


def test_patch_of_an_unknown_id_is_404(api):
    ops = [{"op": "replace", "path": "/active", "value": False}]
    assert_outcome(patch(api, "nobody", ops), 404, "not-found")


def test_patch_of_a_deleted_resource_is_410(api, pid):
    api.fhir("DELETE", f"/fhir/Patient/{pid}")
    assert_outcome(patch(api, pid, [{"op": "replace", "path": "/active", "value": False}]), 410)
