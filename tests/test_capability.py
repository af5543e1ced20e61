"""GET [base]/metadata: the CapabilityStatement, and that what it declares works
(hl7.org/fhir/R4B/http.html#capabilities, hl7.org/fhir/R4B/capabilitystatement.html)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils.http import http_date
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from fhir_api.resource_types import RESOURCE_TYPES

BASE = "http://testserver/fhir"
SYSTEM = "urn:test:ids"
SAMPLE = {
    "Patient": {"name": [{"family": "Smith"}]},
    "Observation": {"status": "final", "code": {"text": "heart rate"}},
    "Organization": {"name": "Acme Clinic"},
    "Device": {"deviceName": [{"name": "Pump", "type": "user-friendly-name"}]},
}
# A value of each search parameter type that a strict search must accept.
VALUES = {
    "token": "urn:test|x",
    "string": "x",
    "date": "ge2020-01-01",
    "reference": "Patient/x",
    "uri": "http://example.org/x",
    "number": "5",
    "quantity": "5.4||kg",
}


@pytest.fixture
def user(django_user_model):
    """A user without a password: the API authenticates by token, and hashing costs 0.3 s."""
    return django_user_model.objects.create_user("clinician")


@pytest.fixture
def capability(anon) -> dict:
    r = anon.fhir("GET", "/fhir/metadata")
    assert r.status_code == 200
    assert r["Content-Type"].startswith("application/fhir+json")
    return r.json_body


def declared(capability: dict, resource_type: str) -> dict:
    (rest,) = capability["rest"]
    return next(r for r in rest["resource"] if r["type"] == resource_type)


def resource(resource_type: str, value: str, **extra) -> dict:
    return {
        "resourceType": resource_type,
        "identifier": [{"system": SYSTEM, "value": value}],
        **SAMPLE[resource_type],
        **extra,
    }


def test_capability_statement_is_a_valid_r4b_resource(capability):
    CapabilityStatement.model_validate(capability)
    assert capability["resourceType"] == "CapabilityStatement"
    assert capability["fhirVersion"] == "4.3.0"
    assert capability["kind"] == "instance"
    assert capability["status"] == "active"
    assert capability["implementation"]["url"] == BASE
    assert "application/fhir+json" in capability["format"] or "json" in capability["format"]
    assert "application/json-patch+json" in capability["patchFormat"]
    (rest,) = capability["rest"]
    assert rest["mode"] == "server"


def test_metadata_with_a_trailing_slash_and_with_a_token(api):
    r = api.fhir("GET", "/fhir/metadata/")
    assert r.status_code == 200
    assert r.json_body["fhirVersion"] == "4.3.0"


def test_every_stored_type_is_declared_once(capability):
    (rest,) = capability["rest"]
    types = [r["type"] for r in rest["resource"]]
    assert sorted(types) == sorted(RESOURCE_TYPES)


def test_system_interactions_work(api, capability):
    (rest,) = capability["rest"]
    codes = {i["code"] for i in rest.get("interaction", [])}
    assert codes <= {"transaction", "batch", "history-system", "search-system"}
    patient = resource("Patient", "SYS-1")
    for code in sorted(codes, key=lambda c: c not in ("transaction", "batch")):
        if code in ("transaction", "batch"):
            bundle = {
                "resourceType": "Bundle",
                "type": code,
                "entry": [{"request": {"method": "POST", "url": "Patient"}, "resource": patient}],
            }
            r = api.fhir("POST", "/fhir", bundle)
            assert r.status_code == 200, (code, r.content)
            assert r.json_body["type"] == f"{code}-response"
            assert r.json_body["entry"][0]["response"]["status"].startswith("201")
        elif code == "history-system":
            r = api.fhir("GET", "/fhir/_history")
            assert r.status_code == 200
            assert r.json_body["type"] == "history"
            assert r.json_body["total"] >= 1
        else:
            r = api.fhir("GET", "/fhir?_id=x")
            assert r.status_code == 200, r.content


@pytest.mark.parametrize("resource_type", sorted(SAMPLE))
def test_every_declared_interaction_works(api, capability, resource_type):
    decl = declared(capability, resource_type)
    codes = [i["code"] for i in decl["interaction"]]
    known = {
        "create",
        "read",
        "vread",
        "update",
        "patch",
        "history-instance",
        "history-type",
        "search-type",
        "delete",
    }
    assert set(codes) <= known, set(codes) - known
    # Run them in an order where each has something to act on; delete last.
    order = sorted(codes, key=lambda c: (c != "create", c == "delete"))
    rid = None
    version = 0
    for code in order:
        if code == "create":
            r = api.fhir("POST", f"/fhir/{resource_type}", resource(resource_type, "I-1"))
            assert r.status_code == 201, r.content
            rid, version = r.json_body["id"], 1
            continue
        assert rid is not None
        path = f"/fhir/{resource_type}/{rid}"
        if code == "read":
            r = api.fhir("GET", path)
            assert r.status_code == 200
            assert r.json_body["id"] == rid
        elif code == "vread":
            r = api.fhir("GET", f"{path}/_history/1")
            assert r.status_code == 200
            assert r.json_body["meta"]["versionId"] == "1"
        elif code == "update":
            r = api.fhir("PUT", path, {**resource(resource_type, "I-1"), "id": rid})
            assert r.status_code == 200, r.content
            version += 1
            assert r["ETag"] == f'W/"{version}"'
        elif code == "patch":
            ops = [{"op": "add", "path": "/language", "value": "en"}]
            r = api.fhir("PATCH", path, ops, content_type="application/json-patch+json")
            assert r.status_code == 200, r.content
            version += 1
            assert r.json_body["language"] == "en"
        elif code == "history-instance":
            r = api.fhir("GET", f"{path}/_history")
            assert r.status_code == 200
            assert len(r.json_body["entry"]) == version
        elif code == "history-type":
            r = api.fhir("GET", f"/fhir/{resource_type}/_history")
            assert r.status_code == 200
            assert r.json_body["type"] == "history"
        elif code == "search-type":
            r = api.fhir("GET", f"/fhir/{resource_type}?_id={rid}")
            assert r.status_code == 200
            assert [e["resource"]["id"] for e in r.json_body["entry"]] == [rid]
        elif code == "delete":
            assert api.fhir("DELETE", path).status_code == 204
            assert api.fhir("GET", path).status_code == 410


@pytest.mark.parametrize("resource_type", sorted(SAMPLE))
def test_declared_conditional_and_versioning_behaviour_works(api, capability, resource_type):
    decl = declared(capability, resource_type)
    url = f"/fhir/{resource_type}"
    condition = f"identifier={SYSTEM}|C-1"
    if decl.get("conditionalCreate"):
        first = api.fhir("POST", url, resource(resource_type, "C-1"), HTTP_IF_NONE_EXIST=condition)
        again = api.fhir("POST", url, resource(resource_type, "C-1"), HTTP_IF_NONE_EXIST=condition)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json_body["id"] == again.json_body["id"]
    rid = api.fhir("POST", url, resource(resource_type, "C-2")).json_body["id"]
    if decl.get("conditionalUpdate"):
        r = api.fhir("PUT", f"{url}?identifier={SYSTEM}|C-2", resource(resource_type, "C-2"))
        assert r.status_code == 200, r.content
        assert r.json_body["id"] == rid
    if decl.get("updateCreate"):
        r = api.fhir(
            "PUT", f"{url}/client-id-1", {**resource(resource_type, "C-3"), "id": "client-id-1"}
        )
        assert r.status_code == 201, r.content
    if decl.get("versioning") == "versioned-update":
        stale = api.fhir(
            "PUT",
            f"{url}/{rid}",
            {**resource(resource_type, "C-2"), "id": rid},
            HTTP_IF_MATCH='W/"1"',
        )
        assert stale.status_code == 412
    if decl.get("readHistory"):
        assert api.fhir("GET", f"{url}/{rid}/_history/1").status_code == 200
    if decl.get("conditionalRead") in ("modified-since", "full-support"):
        tomorrow = http_date((datetime.now(UTC) + timedelta(days=1)).timestamp())
        r = api.fhir("GET", f"{url}/{rid}", HTTP_IF_MODIFIED_SINCE=tomorrow)
        assert r.status_code == 304
    if decl.get("conditionalRead") in ("not-match", "full-support"):
        etag = api.fhir("GET", f"{url}/{rid}")["ETag"]
        assert api.fhir("GET", f"{url}/{rid}", HTTP_IF_NONE_MATCH=etag).status_code == 304
    if decl.get("conditionalDelete") in ("single", "multiple"):
        api.fhir("POST", url, resource(resource_type, "C-DUP"))
        api.fhir("POST", url, resource(resource_type, "C-DUP"))
        several = api.fhir("DELETE", f"{url}?identifier={SYSTEM}|C-DUP")
        assert several.status_code == (412 if decl["conditionalDelete"] == "single" else 204)
        assert api.fhir("DELETE", f"{url}?identifier={SYSTEM}|C-2").status_code == 204
        assert api.fhir("GET", f"{url}/{rid}").status_code == 410


@pytest.mark.parametrize("resource_type", sorted(SAMPLE))
def test_declared_id_last_updated_and_identifier_search_params_work(api, capability, resource_type):
    names = {p["name"]: p["type"] for p in declared(capability, resource_type)["searchParam"]}
    assert names["_id"] == "token"
    assert names["_lastUpdated"] == "date"
    assert names["identifier"] == "token"
    url = f"/fhir/{resource_type}"
    one = api.fhir("POST", url, resource(resource_type, "S-1")).json_body
    two = api.fhir("POST", url, resource(resource_type, "S-2")).json_body

    def ids(query: str) -> list[str]:
        r = api.fhir("GET", f"{url}?{query}", HTTP_PREFER="handling=strict")
        assert r.status_code == 200, (query, r.content)
        return sorted(e["resource"]["id"] for e in r.json_body.get("entry", []))

    assert ids(f"_id={one['id']}") == [one["id"]]
    assert ids(f"identifier={SYSTEM}|S-2") == [two["id"]]
    assert ids("identifier=S-1") == [one["id"]]
    assert ids(f"_lastUpdated=ge{one['meta']['lastUpdated']}") == sorted([one["id"], two["id"]])
    assert ids(f"_lastUpdated=gt{two['meta']['lastUpdated']}") == []
    assert ids("_lastUpdated=lt2000") == []


@pytest.mark.parametrize("resource_type", sorted(SAMPLE))
def test_every_declared_search_param_is_accepted_under_strict_handling(
    api, capability, resource_type
):
    params = declared(capability, resource_type)["searchParam"]
    api.fhir("POST", f"/fhir/{resource_type}", resource(resource_type, "A-1"))
    for param in params:
        if param["type"] not in VALUES:
            continue  # composite and special values have shapes of their own
        query = f"{param['name']}={VALUES[param['type']]}"
        r = api.fhir("GET", f"/fhir/{resource_type}?{query}", HTTP_PREFER="handling=strict")
        assert r.status_code == 200, (query, r.content)
        assert r.json_body["type"] == "searchset"
