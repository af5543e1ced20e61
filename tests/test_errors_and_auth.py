"""Authentication and the error answers every FHIR client meets (hl7.org/fhir/R4B/http.html#Status,
hl7.org/fhir/R4B/security.html)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from fhir_api.models import ApiToken, Resource, ResourceVersion, TokenIndex
from tests.conftest import FHIRClient


@pytest.fixture
def user(django_user_model):
    """A user without a password: the API authenticates by token, and hashing costs 0.3 s."""
    return django_user_model.objects.create_user("clinician")


def client_with(header: str) -> FHIRClient:
    client = FHIRClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    return client


def assert_outcome(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json_body
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] in ("error", "fatal")
    if code is not None:
        assert body["issue"][0]["code"] == code
    return body


def assert_401(response) -> None:
    assert_outcome(response, 401, "login")
    assert response["WWW-Authenticate"].startswith("Bearer")


def counts() -> tuple[int, int, int]:
    return Resource.objects.count(), ResourceVersion.objects.count(), TokenIndex.objects.count()


PATIENT = {"resourceType": "Patient", "name": [{"family": "Smith"}]}


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/fhir/Patient"),
        ("GET", "/fhir/Patient/1"),
        ("POST", "/fhir/Patient"),
        ("PUT", "/fhir/Patient/1"),
        ("DELETE", "/fhir/Patient/1"),
        ("GET", "/fhir/_history"),
        ("POST", "/fhir"),
    ],
)
def test_no_token_is_401_with_www_authenticate_bearer(anon, method, path):
    body = None if method in ("GET", "DELETE") else {**PATIENT, "id": "1"}
    assert_401(anon.fhir(method, path, body))
    assert counts() == (0, 0, 0)


def test_a_token_that_was_never_issued_is_401(db):
    assert_401(client_with("Bearer not-a-real-token").fhir("GET", "/fhir/Patient"))


def test_an_empty_bearer_token_is_401(db):
    assert_401(client_with("Bearer ").fhir("GET", "/fhir/Patient"))


def test_another_auth_scheme_is_401(db, user):
    assert_401(client_with("Basic Y2xpbmljaWFuOnBhc3N3b3Jk").fhir("GET", "/fhir/Patient"))


def test_a_revoked_token_is_401(api, token):
    assert api.fhir("GET", "/fhir/Patient").status_code == 200
    ApiToken.objects.filter(key_hash=ApiToken.hash_key(token)).update(revoked=True)
    assert_401(api.fhir("GET", "/fhir/Patient"))


def test_the_token_of_an_inactive_user_is_401(api, user):
    user.is_active = False
    user.save()
    assert_401(api.fhir("GET", "/fhir/Patient"))


def test_the_bearer_keyword_is_case_insensitive(db, token):
    assert client_with(f"bearer {token}").fhir("GET", "/fhir/Patient").status_code == 200


def test_metadata_is_open_without_a_token(anon):
    r = anon.fhir("GET", "/fhir/metadata")
    assert r.status_code == 200
    assert r.json_body["resourceType"] == "CapabilityStatement"


def test_metadata_is_open_even_with_a_bad_token(db):
    r = client_with("Bearer nonsense").fhir("GET", "/fhir/metadata")
    assert r.status_code == 200


def test_issue_token_creates_the_user_and_a_working_token(db):
    out, err = io.StringIO(), io.StringIO()
    call_command("issue_token", "newuser", stdout=out, stderr=err)
    key = out.getvalue().strip().splitlines()[-1]
    assert get_user_model().objects.filter(username="newuser").exists()
    assert "newuser" in err.getvalue()
    client = client_with(f"Bearer {key}")
    assert client.fhir("POST", "/fhir/Patient", PATIENT).status_code == 201
    assert client.fhir("GET", "/fhir/Patient").json_body["total"] == 1
    # Only the hash is stored: the token itself is nowhere in the database.
    assert not ApiToken.objects.filter(key_hash=key).exists()


def test_issue_token_for_an_existing_user_adds_a_second_token(db, token, user):
    out = io.StringIO()
    call_command("issue_token", user.username, stdout=out, stderr=io.StringIO())
    key = out.getvalue().strip().splitlines()[-1]
    assert key != token
    assert ApiToken.objects.filter(user=user).count() == 2
    assert get_user_model().objects.filter(username=user.username).count() == 1
    assert client_with(f"Bearer {key}").fhir("GET", "/fhir/Patient").status_code == 200
    assert client_with(f"Bearer {token}").fhir("GET", "/fhir/Patient").status_code == 200


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/Patient/1/_history/1/extra",
        "/fhir/Patient/1/everything-else",
        "/fhir/123",
        "/fhir/$export",
        "/fhir/Patient/1/_history/1/2/3",
    ],
)
def test_an_unknown_path_under_fhir_is_404_operation_outcome(api, path):
    assert_outcome(api.fhir("GET", path), 404)


def test_an_unknown_path_is_404_for_every_method(api):
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        body = None if method in ("GET", "DELETE") else {}
        assert_outcome(api.fhir(method, "/fhir/no/such/thing/here/at/all", body), 404)


def test_an_unknown_resource_type_is_404(api):
    assert_outcome(api.fhir("GET", "/fhir/Spaceship"), 404)
    assert_outcome(api.fhir("GET", "/fhir/patient/1"), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/fhir/Patient/123"),
        ("POST", "/fhir/Patient/123/_history"),
        ("PUT", "/fhir/Patient/123/_history/1"),
        ("DELETE", "/fhir/Patient/_history"),
        ("DELETE", "/fhir/metadata"),
        ("PUT", "/fhir"),
        ("DELETE", "/fhir/_history"),
        ("GET", "/fhir/Patient/_search"),
    ],
)
def test_an_unsupported_method_is_405_operation_outcome(api, method, path):
    body = None if method in ("GET", "DELETE") else PATIENT
    r = api.fhir(method, path, body)
    assert_outcome(r, 405, "not-supported")
    assert method not in r["Allow"]
    assert counts() == (0, 0, 0)


def test_post_on_an_instance_lists_the_allowed_methods(api):
    r = api.fhir("POST", "/fhir/Patient/123", PATIENT)
    allowed = {m.strip() for m in r["Allow"].split(",")}
    assert {"GET", "PUT", "PATCH", "DELETE"} <= allowed


@pytest.mark.parametrize("base", ["/fhir", "/fhir/"])
def test_the_base_with_and_without_a_trailing_slash(api, base):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": []}
    r = api.fhir("POST", base, bundle)
    assert r.status_code == 200
    assert r.json_body["type"] == "batch-response"
    assert api.fhir("GET", f"{base.rstrip('/')}/metadata/").status_code == 200
    assert (
        api.fhir("GET", f"{base}{'_history' if base.endswith('/') else '/_history'}").status_code
        == 200
    )
    # GET [base] is a system-level search (test_search_system.py)
    searched = api.fhir("GET", base)
    assert searched.status_code == 200
    assert searched.json_body["type"] == "searchset"


def test_type_and_instance_urls_with_a_trailing_slash(api):
    created = api.fhir("POST", "/fhir/Patient/", PATIENT)
    assert created.status_code == 201
    pid = created.json_body["id"]
    assert api.fhir("GET", "/fhir/Patient/").json_body["total"] == 1
    assert api.fhir("GET", f"/fhir/Patient/{pid}/").status_code == 200
    assert api.fhir("GET", f"/fhir/Patient/{pid}/_history/").status_code == 200
    assert api.fhir("GET", f"/fhir/Patient/{pid}/_history/1/").status_code == 200


def test_a_failed_request_changes_nothing(api):
    pid = api.fhir("POST", "/fhir/Patient", {**PATIENT, "identifier": [{"value": "X"}]}).json_body[
        "id"
    ]
    before = counts()
    failures = [
        api.fhir("POST", "/fhir/Patient", {"resourceType": "Patient", "birthDate": "soon"}),
        api.fhir("POST", "/fhir/Patient", "{not json"),
        api.fhir("PUT", f"/fhir/Patient/{pid}", {**PATIENT, "id": "other"}),
        api.fhir("PUT", f"/fhir/Patient/{pid}", {**PATIENT, "id": pid}, HTTP_IF_MATCH='W/"5"'),
        api.fhir(
            "PATCH",
            f"/fhir/Patient/{pid}",
            [{"op": "replace", "path": "/birthDate", "value": "never"}],
            content_type="application/json-patch+json",
        ),
        api.fhir("DELETE", f"/fhir/Patient/{pid}", HTTP_IF_MATCH='W/"2"'),
        api.fhir("DELETE", "/fhir/Patient?colour=blue"),
        api.fhir(
            "POST",
            "/fhir",
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {"request": {"method": "POST", "url": "Patient"}, "resource": PATIENT},
                    {"request": {"method": "DELETE", "url": "Patient/bad_id"}},
                ],
            },
        ),
        FHIRClient().fhir("POST", "/fhir/Patient", PATIENT),
    ]
    assert [r.status_code for r in failures] == [422, 400, 400, 412, 422, 412, 400, 400, 401]
    for r in failures:
        assert r.json_body["resourceType"] == "OperationOutcome"
    assert counts() == before
    current = api.fhir("GET", f"/fhir/Patient/{pid}")
    assert current["ETag"] == 'W/"1"'
    assert current.json_body["name"] == [{"family": "Smith"}]


def test_every_error_body_is_an_operation_outcome_with_a_diagnostic(api):
    for r in (
        api.fhir("GET", "/fhir/Patient/nobody"),
        api.fhir("GET", "/fhir/Patient?_count=lots"),
        api.fhir("GET", "/fhir/Patient/nobody/_history/x"),
        api.fhir("POST", "/fhir/Patient", "<Patient/>", content_type="application/xml"),
    ):
        body = assert_outcome(r, r.status_code)
        assert 400 <= r.status_code < 500
        assert body["issue"][0]["diagnostics"]


def test_a_body_over_the_size_limit_is_413(api, settings):
    settings.FHIR_MAX_BODY_BYTES = 200
    body = {"resourceType": "Patient", "name": [{"text": "x" * 300}]}
    assert_outcome(api.fhir("POST", "/fhir/Patient", body), 413, "too-costly")
    assert counts() == (0, 0, 0)
    assert api.fhir("POST", "/fhir/Patient", PATIENT).status_code == 201
