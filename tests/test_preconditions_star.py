"""``If-Match: *`` and ``If-None-Match: *`` on writes (RFC 9110 §13.1.1-2,
hl7.org/fhir/R4B/http.html#concurrency).

``If-Match: *`` means "the resource exists": the write goes ahead on any version and fails with
412 when there is none, so it never creates. ``If-None-Match: *`` on a PUT means "create only".
"""

from __future__ import annotations

import pytest

from fhir_api.models import Resource, ResourceVersion


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


def assert_outcome(response, status: int) -> None:
    assert response.status_code == status, response.content
    assert response.json_body["resourceType"] == "OperationOutcome"


def versions(pid: str) -> int:
    return ResourceVersion.objects.filter(resource_type="Patient", logical_id=pid).count()


def test_update_if_match_star_updates_an_existing_resource(api, pid):
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "Jones"), HTTP_IF_MATCH="*")
    assert r.status_code == 200, r.content
    assert r["ETag"] == 'W/"2"'
    assert api.fhir("GET", f"/fhir/Patient/{pid}").json_body["name"][0]["family"] == "Jones"


def test_update_if_match_star_never_creates(api):
    r = api.fhir("PUT", "/fhir/Patient/not-there", patient("not-there"), HTTP_IF_MATCH="*")
    assert_outcome(r, 412)
    assert not Resource.objects.filter(logical_id="not-there").exists()
    assert api.fhir("GET", "/fhir/Patient/not-there").status_code == 404


def test_update_if_match_star_on_a_deleted_resource_fails(api, pid):
    assert api.fhir("DELETE", f"/fhir/Patient/{pid}").status_code == 204
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "Back"), HTTP_IF_MATCH="*")
    assert_outcome(r, 412)
    assert api.fhir("GET", f"/fhir/Patient/{pid}").status_code == 410


def test_if_match_list_of_etags(api, pid):
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "Jones"), HTTP_IF_MATCH='W/"7", W/"1"')
    assert r.status_code == 200, r.content
    stale = api.fhir(
        "PUT", f"/fhir/Patient/{pid}", patient(pid, "Lost"), HTTP_IF_MATCH='W/"1", W/"3"'
    )
    assert_outcome(stale, 412)
    assert versions(pid) == 2


def test_patch_if_match_star(api, pid):
    ops = [{"op": "replace", "path": "/name/0/family", "value": "Jones"}]
    r = api.fhir(
        "PATCH",
        f"/fhir/Patient/{pid}",
        ops,
        content_type="application/json-patch+json",
        HTTP_IF_MATCH="*",
    )
    assert r.status_code == 200, r.content
    assert r.json_body["name"][0]["family"] == "Jones"


def test_delete_if_match_star(api, pid):
    assert_outcome(api.fhir("DELETE", "/fhir/Patient/nobody", HTTP_IF_MATCH="*"), 412)
    r = api.fhir("DELETE", f"/fhir/Patient/{pid}", HTTP_IF_MATCH="*")
    assert r.status_code == 204, r.content
    assert api.fhir("GET", f"/fhir/Patient/{pid}").status_code == 410


def test_if_match_garbage_is_a_bad_request(api, pid):
    for value in ('*, W/"1"', "yesterday", ","):
        r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid), HTTP_IF_MATCH=value)
        assert_outcome(r, 400)
    assert versions(pid) == 1


def test_update_if_none_match_star_creates_only(api, pid):
    r = api.fhir("PUT", "/fhir/Patient/fresh-1", patient("fresh-1"), HTTP_IF_NONE_MATCH="*")
    assert r.status_code == 201, r.content
    again = api.fhir(
        "PUT", "/fhir/Patient/fresh-1", patient("fresh-1", "Other"), HTTP_IF_NONE_MATCH="*"
    )
    assert_outcome(again, 412)
    assert api.fhir("GET", "/fhir/Patient/fresh-1").json_body["name"][0]["family"] == "Smith"
    existing = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "X"), HTTP_IF_NONE_MATCH="*")
    assert_outcome(existing, 412)
    assert versions(pid) == 1


def test_update_if_none_match_star_recreates_a_deleted_resource(api, pid):
    assert api.fhir("DELETE", f"/fhir/Patient/{pid}").status_code == 204
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "Back"), HTTP_IF_NONE_MATCH="*")
    assert r.status_code == 201, r.content
    assert r["ETag"] == 'W/"3"'


def test_update_if_none_match_etag(api, pid):
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "X"), HTTP_IF_NONE_MATCH='W/"1"')
    assert_outcome(r, 412)
    r = api.fhir("PUT", f"/fhir/Patient/{pid}", patient(pid, "Y"), HTTP_IF_NONE_MATCH='W/"5"')
    assert r.status_code == 200, r.content


def test_conditional_update_if_match_star_with_no_match_creates_nothing(api):
    url = "/fhir/Patient?identifier=urn:test|none"
    r = api.fhir("PUT", url, patient(), HTTP_IF_MATCH="*")
    assert_outcome(r, 412)
    assert not Resource.objects.filter(resource_type="Patient").exists()


def test_transaction_entry_if_none_match_star_on_existing_rolls_back(api, pid):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": patient("tx-new"),
                "request": {"method": "PUT", "url": "Patient/tx-new", "ifNoneMatch": "*"},
            },
            {
                "resource": patient(pid, "Overwritten"),
                "request": {"method": "PUT", "url": f"Patient/{pid}", "ifNoneMatch": "*"},
            },
        ],
    }
    assert_outcome(api.fhir("POST", "/fhir", bundle), 412)
    assert not Resource.objects.filter(logical_id="tx-new").exists()
    assert versions(pid) == 1


def test_batch_entry_if_match_star(api, pid):
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": patient(pid, "Jones"),
                "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": "*"},
            },
            {
                "resource": patient("ghost"),
                "request": {"method": "PUT", "url": "Patient/ghost", "ifMatch": "*"},
            },
        ],
    }
    r = api.fhir("POST", "/fhir", bundle)
    assert r.status_code == 200, r.content
    statuses = [e["response"]["status"] for e in r.json_body["entry"]]
    assert statuses[0].startswith("200")
    assert statuses[1].startswith("412")
    assert not Resource.objects.filter(logical_id="ghost").exists()
