"""Conditional create, update, patch and delete (hl7.org/fhir/R4B/http.html#ccreate,
#cond-update, #patch, #cdelete)."""

from __future__ import annotations

import pytest

from fhir_api.models import Resource, ResourceVersion

SYSTEM = "urn:test:mrn"


@pytest.fixture
def user(django_user_model):
    """A user without a password: the API authenticates by token, and hashing costs 0.3 s."""
    return django_user_model.objects.create_user("clinician")


def patient(mrn: str, family: str = "Smith", **extra) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": mrn}],
        "name": [{"family": family}],
        **extra,
    }


def create(api, mrn: str, family: str = "Smith") -> str:
    r = api.fhir("POST", "/fhir/Patient", patient(mrn, family))
    assert r.status_code == 201
    return r.json_body["id"]


def patients() -> int:
    return Resource.objects.filter(resource_type="Patient", deleted=False).count()


def assert_outcome(response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.content
    assert response.json_body["resourceType"] == "OperationOutcome"
    if code is not None:
        assert response.json_body["issue"][0]["code"] == code


# --- conditional create (If-None-Exist) -------------------------------------------------------


def test_if_none_exist_twice_creates_one_resource(api):
    condition = f"identifier={SYSTEM}|A-1"
    first = api.fhir("POST", "/fhir/Patient", patient("A-1"), HTTP_IF_NONE_EXIST=condition)
    second = api.fhir(
        "POST", "/fhir/Patient", patient("A-1", "Other"), HTTP_IF_NONE_EXIST=condition
    )
    assert first.status_code == 201, first.content
    assert second.status_code == 200, second.content
    assert second.json_body["id"] == first.json_body["id"]
    assert second.json_body["name"] == [{"family": "Smith"}]  # the existing one, unchanged
    assert second["ETag"] == 'W/"1"'
    assert second["Location"] == first["Location"]
    assert patients() == 1
    assert ResourceVersion.objects.count() == 1


def test_if_none_exist_with_no_match_creates(api):
    create(api, "A-1")
    r = api.fhir(
        "POST", "/fhir/Patient", patient("A-2"), HTTP_IF_NONE_EXIST=f"identifier={SYSTEM}|A-2"
    )
    assert r.status_code == 201
    assert patients() == 2


def test_if_none_exist_ignores_deleted_resources(api):
    pid = create(api, "A-1")
    api.fhir("DELETE", f"/fhir/Patient/{pid}")
    r = api.fhir(
        "POST", "/fhir/Patient", patient("A-1"), HTTP_IF_NONE_EXIST=f"identifier={SYSTEM}|A-1"
    )
    assert r.status_code == 201
    assert r.json_body["id"] != pid


def test_if_none_exist_with_a_leading_question_mark(api):
    pid = create(api, "A-1")
    r = api.fhir(
        "POST", "/fhir/Patient", patient("A-1"), HTTP_IF_NONE_EXIST=f"?identifier={SYSTEM}|A-1"
    )
    assert r.status_code == 200
    assert r.json_body["id"] == pid


def test_if_none_exist_with_several_matches_is_412(api):
    create(api, "DUP")
    create(api, "DUP")
    r = api.fhir(
        "POST", "/fhir/Patient", patient("DUP"), HTTP_IF_NONE_EXIST=f"identifier={SYSTEM}|DUP"
    )
    assert_outcome(r, 412)
    assert patients() == 2


def test_if_none_exist_with_prefer_minimal(api):
    pid = create(api, "A-1")
    r = api.fhir(
        "POST",
        "/fhir/Patient",
        patient("A-1"),
        HTTP_IF_NONE_EXIST=f"identifier={SYSTEM}|A-1",
        HTTP_PREFER="return=minimal",
    )
    assert r.status_code == 200
    assert r.content == b""
    assert r["Location"] == f"http://testserver/fhir/Patient/{pid}/_history/1"


@pytest.mark.parametrize("condition", ["colour=blue", f"shoe-size=9&identifier={SYSTEM}|A-1"])
def test_if_none_exist_with_an_unknown_search_parameter_is_400(api, condition):
    create(api, "A-1")
    r = api.fhir("POST", "/fhir/Patient", patient("A-1"), HTTP_IF_NONE_EXIST=condition)
    assert_outcome(r, 400)
    assert patients() == 1


def test_if_none_exist_without_criteria_is_400(api):
    r = api.fhir("POST", "/fhir/Patient", patient("A-1"), HTTP_IF_NONE_EXIST="_count=1")
    assert_outcome(r, 400)
    assert patients() == 0


# --- conditional update -----------------------------------------------------------------------


def test_conditional_update_with_no_match_creates(api):
    r = api.fhir("PUT", f"/fhir/Patient?identifier={SYSTEM}|U-1", patient("U-1"))
    assert r.status_code == 201, r.content
    pid = r.json_body["id"]
    assert r["Location"] == f"http://testserver/fhir/Patient/{pid}/_history/1"
    assert patients() == 1


def test_conditional_update_with_no_match_and_an_id_creates_with_that_id(api):
    r = api.fhir("PUT", f"/fhir/Patient?identifier={SYSTEM}|U-1", patient("U-1", id="u-one"))
    assert r.status_code == 201
    assert r.json_body["id"] == "u-one"


def test_conditional_update_with_one_match_updates_it(api):
    pid = create(api, "U-1")
    r = api.fhir("PUT", f"/fhir/Patient?identifier={SYSTEM}|U-1", patient("U-1", "Jones"))
    assert r.status_code == 200, r.content
    assert r.json_body["id"] == pid
    assert r["ETag"] == 'W/"2"'
    assert api.fhir("GET", f"/fhir/Patient/{pid}").json_body["name"] == [{"family": "Jones"}]
    assert patients() == 1


def test_conditional_update_then_again_updates_the_same_resource(api):
    first = api.fhir("PUT", f"/fhir/Patient?identifier={SYSTEM}|U-1", patient("U-1"))
    second = api.fhir("PUT", f"/fhir/Patient?identifier={SYSTEM}|U-1", patient("U-1", "Jones"))
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json_body["id"] == second.json_body["id"]
    assert second.json_body["meta"]["versionId"] == "2"


def test_conditional_update_with_the_matching_id_in_the_body(api):
    pid = create(api, "U-1")
    r = api.fhir("PUT", f"/fhir/Patient?identifier={SYSTEM}|U-1", patient("U-1", "Jones", id=pid))
    assert r.status_code == 200
    assert r.json_body["id"] == pid


def test_conditional_update_with_another_id_in_the_body_is_400(api):
    pid = create(api, "U-1")
    r = api.fhir("PUT", f"/fhir/Patient?identifier={SYSTEM}|U-1", patient("U-1", "Jones", id="x"))
    assert_outcome(r, 400)
    assert api.fhir("GET", f"/fhir/Patient/{pid}")["ETag"] == 'W/"1"'


def test_conditional_update_with_several_matches_is_412(api):
    create(api, "DUP")
    create(api, "DUP")
    r = api.fhir("PUT", f"/fhir/Patient?identifier={SYSTEM}|DUP", patient("DUP", "Jones"))
    assert_outcome(r, 412)
    assert ResourceVersion.objects.count() == 2


def test_conditional_update_with_if_match(api):
    pid = create(api, "U-1")
    url = f"/fhir/Patient?identifier={SYSTEM}|U-1"
    stale = api.fhir("PUT", url, patient("U-1", "Jones"), HTTP_IF_MATCH='W/"9"')
    assert_outcome(stale, 412)
    ok = api.fhir("PUT", url, patient("U-1", "Jones"), HTTP_IF_MATCH='W/"1"')
    assert ok.status_code == 200
    assert ok.json_body["id"] == pid


def test_conditional_update_with_an_unknown_search_parameter_is_400(api):
    create(api, "U-1")
    r = api.fhir("PUT", "/fhir/Patient?favourite-colour=blue", patient("U-1", "Jones"))
    assert_outcome(r, 400)
    assert patients() == 1
    assert ResourceVersion.objects.count() == 1


def test_conditional_update_without_criteria_is_400(api):
    assert_outcome(api.fhir("PUT", "/fhir/Patient", patient("U-1")), 400)
    assert_outcome(api.fhir("PUT", "/fhir/Patient?_format=json", patient("U-1")), 400)
    assert patients() == 0


def test_conditional_update_with_an_invalid_resource_is_422(api):
    r = api.fhir("PUT", f"/fhir/Patient?identifier={SYSTEM}|U-1", patient("U-1", birthDate="?"))
    assert_outcome(r, 422)
    assert patients() == 0


# --- conditional delete -----------------------------------------------------------------------


def test_conditional_delete_with_one_match_deletes_it(api):
    pid = create(api, "D-1")
    keep = create(api, "D-2")
    r = api.fhir("DELETE", f"/fhir/Patient?identifier={SYSTEM}|D-1")
    assert r.status_code == 204
    assert api.fhir("GET", f"/fhir/Patient/{pid}").status_code == 410
    assert api.fhir("GET", f"/fhir/Patient/{keep}").status_code == 200


def test_conditional_delete_with_no_match_is_204(api):
    keep = create(api, "D-2")
    assert api.fhir("DELETE", f"/fhir/Patient?identifier={SYSTEM}|D-1").status_code == 204
    assert api.fhir("GET", f"/fhir/Patient/{keep}").status_code == 200
    assert ResourceVersion.objects.count() == 1


def test_conditional_delete_with_several_matches_is_412(api):
    """The CapabilityStatement says conditionalDelete = single."""
    create(api, "DUP")
    create(api, "DUP")
    assert_outcome(api.fhir("DELETE", f"/fhir/Patient?identifier={SYSTEM}|DUP"), 412)
    assert patients() == 2


def test_conditional_delete_with_an_unknown_search_parameter_is_400(api):
    create(api, "D-1")
    assert_outcome(api.fhir("DELETE", "/fhir/Patient?colour=blue"), 400)
    assert patients() == 1


def test_conditional_delete_without_criteria_is_400(api):
    create(api, "D-1")
    assert_outcome(api.fhir("DELETE", "/fhir/Patient"), 400)
    assert patients() == 1


# --- conditional patch ------------------------------------------------------------------------

OPS = [{"op": "replace", "path": "/name/0/family", "value": "Patched"}]


def cpatch(api, query: str, **headers):
    return api.fhir(
        "PATCH",
        f"/fhir/Patient?{query}",
        OPS,
        content_type="application/json-patch+json",
        **headers,
    )


def test_conditional_patch_with_one_match_patches_it(api):
    pid = create(api, "P-1")
    r = cpatch(api, f"identifier={SYSTEM}|P-1")
    assert r.status_code == 200, r.content
    assert r.json_body["id"] == pid
    assert r["ETag"] == 'W/"2"'
    assert api.fhir("GET", f"/fhir/Patient/{pid}").json_body["name"] == [{"family": "Patched"}]


def test_conditional_patch_with_no_match_is_404(api):
    create(api, "P-1")
    assert_outcome(cpatch(api, f"identifier={SYSTEM}|P-2"), 404)
    assert ResourceVersion.objects.count() == 1


def test_conditional_patch_with_several_matches_is_412(api):
    create(api, "DUP")
    create(api, "DUP")
    assert_outcome(cpatch(api, f"identifier={SYSTEM}|DUP"), 412)
    assert ResourceVersion.objects.count() == 2


def test_conditional_patch_with_stale_if_match_is_412(api):
    create(api, "P-1")
    assert_outcome(cpatch(api, f"identifier={SYSTEM}|P-1", HTTP_IF_MATCH='W/"2"'), 412)
    assert ResourceVersion.objects.count() == 1


def test_conditional_patch_with_an_unknown_search_parameter_is_400(api):
    create(api, "P-1")
    assert_outcome(cpatch(api, "shoe-size=9"), 400)
    assert ResourceVersion.objects.count() == 1
