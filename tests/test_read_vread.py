"""read and vread (hl7.org/fhir/R4B/http.html#read, #vread), conditional read, HEAD."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils.http import http_date, parse_http_date


@pytest.fixture
def user(django_user_model):
    """A user without a password: the API authenticates by token, and hashing costs 0.3 s."""
    return django_user_model.objects.create_user("clinician")


@pytest.fixture
def patient_id(api) -> str:
    """A Patient with two versions: family Smith, then Jones."""
    r = api.fhir(
        "POST", "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Smith"}]}
    )
    assert r.status_code == 201
    pid = r.json_body["id"]
    body = {"resourceType": "Patient", "id": pid, "name": [{"family": "Jones"}]}
    assert api.fhir("PUT", f"/fhir/Patient/{pid}", body).status_code == 200
    return pid


def assert_outcome(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response.json_body["resourceType"] == "OperationOutcome"
    assert response.json_body["issue"][0]["code"] == code


def test_read_returns_the_current_version_with_etag_and_last_modified(api, patient_id):
    r = api.fhir("GET", f"/fhir/Patient/{patient_id}")
    assert r.status_code == 200
    assert r["Content-Type"].startswith("application/fhir+json")
    assert r["ETag"] == 'W/"2"'
    body = r.json_body
    assert body["id"] == patient_id
    assert body["meta"]["versionId"] == "2"
    assert body["name"] == [{"family": "Jones"}]
    last_updated = datetime.fromisoformat(body["meta"]["lastUpdated"].replace("Z", "+00:00"))
    assert parse_http_date(r["Last-Modified"]) == int(last_updated.timestamp())


def test_read_with_trailing_slash(api, patient_id):
    assert api.fhir("GET", f"/fhir/Patient/{patient_id}/").json_body["id"] == patient_id


def test_vread_returns_each_version(api, patient_id):
    v1 = api.fhir("GET", f"/fhir/Patient/{patient_id}/_history/1")
    v2 = api.fhir("GET", f"/fhir/Patient/{patient_id}/_history/2")
    assert (v1.status_code, v2.status_code) == (200, 200)
    assert v1["ETag"] == 'W/"1"'
    assert v2["ETag"] == 'W/"2"'
    assert v1.json_body["name"] == [{"family": "Smith"}]
    assert v1.json_body["meta"]["versionId"] == "1"
    assert v2.json_body["name"] == [{"family": "Jones"}]
    assert v2.json_body == api.fhir("GET", f"/fhir/Patient/{patient_id}").json_body
    assert v1["Last-Modified"].endswith(" GMT")


def test_read_of_an_unknown_id_is_404(api):
    assert_outcome(api.fhir("GET", "/fhir/Patient/does-not-exist"), 404, "not-found")


def test_read_of_an_unknown_type_is_404(api):
    assert_outcome(api.fhir("GET", "/fhir/Spaceship/1"), 404, "not-supported")


def test_read_of_an_id_of_another_type_is_404(api, patient_id):
    assert_outcome(api.fhir("GET", f"/fhir/Observation/{patient_id}"), 404, "not-found")


def test_vread_of_an_unknown_version_is_404(api, patient_id):
    assert_outcome(api.fhir("GET", f"/fhir/Patient/{patient_id}/_history/3"), 404, "not-found")
    assert_outcome(api.fhir("GET", f"/fhir/Patient/{patient_id}/_history/0"), 404, "not-found")
    assert_outcome(api.fhir("GET", "/fhir/Patient/nobody/_history/1"), 404, "not-found")


def test_vread_of_a_version_beyond_any_integer_is_404_not_a_server_error(api, patient_id):
    r = api.fhir("GET", f"/fhir/Patient/{patient_id}/_history/99999999999999999999999")
    assert_outcome(r, 404, "not-found")


def test_vread_of_a_version_that_is_not_a_number_is_400(api, patient_id):
    assert_outcome(api.fhir("GET", f"/fhir/Patient/{patient_id}/_history/latest"), 400, "invalid")


def test_read_after_delete_is_410_and_old_versions_remain_readable(api, patient_id):
    assert api.fhir("DELETE", f"/fhir/Patient/{patient_id}").status_code == 204
    assert_outcome(api.fhir("GET", f"/fhir/Patient/{patient_id}"), 410, "deleted")
    # The tombstone version is itself gone; the versions before it can still be read.
    assert_outcome(api.fhir("GET", f"/fhir/Patient/{patient_id}/_history/3"), 410, "deleted")
    v2 = api.fhir("GET", f"/fhir/Patient/{patient_id}/_history/2")
    assert v2.status_code == 200
    assert v2.json_body["name"] == [{"family": "Jones"}]


@pytest.mark.parametrize("bad_id", ["has$dollar", "a" * 65, "under_score", "sp%20ace"])
def test_an_id_that_is_not_a_fhir_id_is_400(api, bad_id):
    assert_outcome(api.fhir("GET", f"/fhir/Patient/{bad_id}"), 400, "invalid")


def test_an_id_of_64_characters_is_a_valid_id(api):
    assert_outcome(api.fhir("GET", f"/fhir/Patient/{'a' * 64}"), 404, "not-found")


@pytest.mark.parametrize("tag", ['W/"2"', '"2"', 'W/"1", W/"2"', "*"])
def test_if_none_match_the_current_version_is_304_without_a_body(api, patient_id, tag):
    r = api.fhir("GET", f"/fhir/Patient/{patient_id}", HTTP_IF_NONE_MATCH=tag)
    assert r.status_code == 304
    assert r.content == b""
    assert r["ETag"] == 'W/"2"'


def test_if_none_match_an_older_version_is_200(api, patient_id):
    r = api.fhir("GET", f"/fhir/Patient/{patient_id}", HTTP_IF_NONE_MATCH='W/"1"')
    assert r.status_code == 200
    assert r.json_body["meta"]["versionId"] == "2"


def test_if_modified_since_last_modified_or_later_is_304(api, patient_id):
    first = api.fhir("GET", f"/fhir/Patient/{patient_id}")
    for since in (first["Last-Modified"], http_date(parse_http_date(first["Last-Modified"]) + 60)):
        r = api.fhir("GET", f"/fhir/Patient/{patient_id}", HTTP_IF_MODIFIED_SINCE=since)
        assert r.status_code == 304, since
        assert r.content == b""


def test_if_modified_since_before_the_last_change_is_200(api, patient_id):
    earlier = http_date((datetime.now(UTC) - timedelta(hours=1)).timestamp())
    r = api.fhir("GET", f"/fhir/Patient/{patient_id}", HTTP_IF_MODIFIED_SINCE=earlier)
    assert r.status_code == 200
    assert r.json_body["id"] == patient_id


def test_if_modified_since_that_is_not_an_http_date_is_ignored(api, patient_id):
    """RFC 9110 §13.1.3: a recipient MUST ignore an If-Modified-Since that is not an HTTP-date."""
    r = api.fhir("GET", f"/fhir/Patient/{patient_id}", HTTP_IF_MODIFIED_SINCE="2020-01-01")
    assert r.status_code == 200
    assert r.json_body["id"] == patient_id


def test_if_none_match_wins_over_if_modified_since(api, patient_id):
    """RFC 9110 §13.1.3: If-Modified-Since is ignored when If-None-Match is present."""
    future = http_date((datetime.now(UTC) + timedelta(days=1)).timestamp())
    r = api.fhir(
        "GET",
        f"/fhir/Patient/{patient_id}",
        HTTP_IF_NONE_MATCH='W/"1"',
        HTTP_IF_MODIFIED_SINCE=future,
    )
    assert r.status_code == 200


def test_head_read_answers_the_headers_without_a_body(api, patient_id):
    r = api.fhir("HEAD", f"/fhir/Patient/{patient_id}")
    assert r.status_code == 200
    assert r.content == b""
    assert r["ETag"] == 'W/"2"'
    assert r["Last-Modified"].endswith(" GMT")
    assert r["Content-Type"].startswith("application/fhir+json")


def test_head_of_an_unknown_id_is_404(api):
    assert api.fhir("HEAD", "/fhir/Patient/does-not-exist").status_code == 404


def test_head_of_a_deleted_resource_is_410(api, patient_id):
    api.fhir("DELETE", f"/fhir/Patient/{patient_id}")
    assert api.fhir("HEAD", f"/fhir/Patient/{patient_id}").status_code == 410
