"""create: POST [base]/[type] (hl7.org/fhir/R4B/http.html#create)."""

from __future__ import annotations

import re

import pytest

from fhir_api.models import Resource, ResourceVersion

LOCATION_RE = re.compile(
    r"^http://testserver/fhir/Patient/(?P<id>[A-Za-z0-9\-.]{1,64})/_history/1$"
)
INSTANT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@pytest.fixture
def user(django_user_model):
    """A user without a password: the API authenticates by token, and hashing costs 0.3 s."""
    return django_user_model.objects.create_user("clinician")


def patient(**extra):
    return {
        "resourceType": "Patient",
        "name": [{"family": "Chalmers", "given": ["Peter"]}],
        **extra,
    }


def assert_outcome(response, status: int, code: str | None = None) -> list[dict]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json_body
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"], body
    if code is not None:
        assert [i["code"] for i in body["issue"]] == [code] * len(body["issue"]), body
    return body["issue"]


def test_create_returns_201_with_location_etag_last_modified_and_the_resource(api):
    r = api.fhir("POST", "/fhir/Patient", patient())
    assert r.status_code == 201, r.content
    match = LOCATION_RE.match(r["Location"])
    assert match, r["Location"]
    new_id = match["id"]
    assert r["ETag"] == 'W/"1"'
    assert r["Last-Modified"].endswith(" GMT")
    assert r["Content-Type"].startswith("application/fhir+json")
    body = r.json_body
    assert body["id"] == new_id
    assert body["meta"]["versionId"] == "1"
    assert INSTANT_RE.match(body["meta"]["lastUpdated"])
    assert body["name"] == [{"family": "Chalmers", "given": ["Peter"]}]

    read = api.fhir("GET", f"/fhir/Patient/{new_id}")
    assert read.status_code == 200
    assert read.json_body == body


def test_server_assigns_the_id_and_ignores_an_id_in_the_body(api):
    first = api.fhir("POST", "/fhir/Patient", patient(id="chosen-by-client"))
    second = api.fhir("POST", "/fhir/Patient", patient(id="chosen-by-client"))
    assert first.status_code == second.status_code == 201
    ids = {first.json_body["id"], second.json_body["id"]}
    assert len(ids) == 2
    assert "chosen-by-client" not in ids
    assert api.fhir("GET", "/fhir/Patient/chosen-by-client").status_code == 404


def test_client_meta_version_and_last_updated_are_replaced(api):
    body = patient(
        meta={
            "versionId": "42",
            "lastUpdated": "2001-01-01T00:00:00Z",
            "tag": [{"system": "http://example.org/tags", "code": "demo"}],
        }
    )
    r = api.fhir("POST", "/fhir/Patient", body)
    assert r.status_code == 201
    meta = r.json_body["meta"]
    assert meta["versionId"] == "1"
    assert not meta["lastUpdated"].startswith("2001")
    assert meta["tag"] == [{"system": "http://example.org/tags", "code": "demo"}]


def test_prefer_return_minimal_gives_an_empty_body_and_the_headers(api):
    r = api.fhir("POST", "/fhir/Patient", patient(), HTTP_PREFER="return=minimal")
    assert r.status_code == 201
    assert r.content == b""
    assert LOCATION_RE.match(r["Location"])
    assert r["ETag"] == 'W/"1"'
    assert Resource.objects.filter(resource_type="Patient").count() == 1


def test_prefer_return_representation_gives_the_resource(api):
    r = api.fhir("POST", "/fhir/Patient", patient(), HTTP_PREFER="return=representation")
    assert r.status_code == 201
    assert r.json_body["resourceType"] == "Patient"
    assert r.json_body["meta"]["versionId"] == "1"


def test_prefer_return_operation_outcome_gives_an_informational_outcome(api):
    r = api.fhir("POST", "/fhir/Patient", patient(), HTTP_PREFER="return=OperationOutcome")
    assert r.status_code == 201
    assert r.json_body["resourceType"] == "OperationOutcome"
    issue = r.json_body["issue"][0]
    assert issue["severity"] == "information"
    new_id = LOCATION_RE.match(r["Location"])["id"]
    assert new_id in issue["diagnostics"]


def test_invalid_resource_is_422_with_one_located_issue_per_problem(api):
    body = {
        "resourceType": "Patient",
        "birthDate": "not-a-date",
        "name": [{"given": "Peter"}],
        "favouriteColour": "blue",
    }
    r = api.fhir("POST", "/fhir/Patient", body)
    issues = assert_outcome(r, 422)
    assert len(issues) == 3, issues
    expressions = {e for issue in issues for e in issue["expression"]}
    assert expressions == {"Patient.birthDate", "Patient.name[0].given", "Patient.favouriteColour"}
    assert all(issue["severity"] == "error" for issue in issues)
    codes = {issue["expression"][0]: issue["code"] for issue in issues}
    assert codes["Patient.favouriteColour"] == "structure"
    assert codes["Patient.birthDate"] == "invalid"
    assert Resource.objects.count() == 0


def test_missing_required_element_is_422(api):
    r = api.fhir("POST", "/fhir/Observation", {"resourceType": "Observation", "status": "final"})
    issues = assert_outcome(r, 422)
    assert ["Observation.code"] in [issue.get("expression") for issue in issues]


def test_body_of_another_type_than_the_url_is_400(api):
    r = api.fhir("POST", "/fhir/Patient", {"resourceType": "Observation", "status": "final"})
    assert_outcome(r, 400, "invalid")
    assert Resource.objects.count() == 0


def test_body_without_resource_type_is_400(api):
    r = api.fhir("POST", "/fhir/Patient", {"name": [{"family": "X"}]})
    assert_outcome(r, 400)


def test_unknown_resource_type_is_404(api):
    r = api.fhir("POST", "/fhir/Spaceship", {"resourceType": "Spaceship"})
    assert_outcome(r, 404, "not-supported")


def test_malformed_json_is_400(api):
    r = api.fhir("POST", "/fhir/Patient", '{"resourceType": "Patient", "name": [')
    assert_outcome(r, 400, "structure")


@pytest.mark.parametrize("body", ["[]", '"Patient"', "42", "null", ""])
def test_json_that_is_not_an_object_is_400(api, body):
    r = api.fhir("POST", "/fhir/Patient", body)
    assert_outcome(r, 400)
    assert Resource.objects.count() == 0


@pytest.mark.parametrize("content_type", ["application/fhir+xml", "application/xml", "text/xml"])
def test_xml_content_type_is_415(api, content_type):
    xml = '<Patient xmlns="http://hl7.org/fhir"><active value="true"/></Patient>'
    r = api.fhir("POST", "/fhir/Patient", xml, content_type=content_type)
    assert_outcome(r, 415, "not-supported")
    assert Resource.objects.count() == 0


def test_content_type_with_charset_is_accepted(api):
    r = api.fhir(
        "POST", "/fhir/Patient", patient(), content_type="application/fhir+json; charset=utf-8"
    )
    assert r.status_code == 201, r.content


@pytest.mark.parametrize(
    "number",
    ["72.50", "1.000E+2", "1.000e-3", "0.0000001", "-0.0", "100", "3.14159265358979323846"],
)
def test_decimals_keep_their_text_on_create_read_vread_and_search(api, number):
    text = (
        '{"resourceType":"Observation","status":"final","code":{"text":"x"},'
        f'"valueQuantity":{{"value":{number},"unit":"kg"}}}}'
    )
    created = api.fhir("POST", "/fhir/Observation", text)
    assert created.status_code == 201, created.content
    stored = f'"value":{number},'.encode()
    assert stored in created.content
    new_id = created.json_body["id"]
    for path in (
        f"/fhir/Observation/{new_id}",
        f"/fhir/Observation/{new_id}/_history/1",
        f"/fhir/Observation?_id={new_id}",
        f"/fhir/Observation/{new_id}/_history",
    ):
        r = api.fhir("GET", path)
        assert r.status_code == 200
        assert stored in r.content, (path, r.content)


def test_a_create_writes_exactly_one_version(api):
    r = api.fhir("POST", "/fhir/Patient", patient())
    versions = ResourceVersion.objects.filter(logical_id=r.json_body["id"])
    assert [(v.version_id, v.method, v.deleted) for v in versions] == [(1, "POST", False)]


@pytest.mark.parametrize("char", ["\\u0000", "\\u0007", "\\b", "\\f", "\\u001f"])
def test_control_characters_in_a_string_are_422(api, char):
    """FHIR strings may not hold characters below U+0020 except tab, CR and LF (datatypes.html#string)."""
    body = f'{{"resourceType":"Patient","name":[{{"family":"Smi{char}th"}}],"identifier":[{{"value":"a{char}"}}]}}'
    r = api.fhir("POST", "/fhir/Patient", body)
    issues = assert_outcome(r, 422)
    expressions = {e for issue in issues for e in issue.get("expression", [])}
    assert expressions == {"Patient.name[0].family", "Patient.identifier[0].value"}
    assert Resource.objects.count() == 0


def test_tab_carriage_return_and_line_feed_are_allowed_in_strings(api):
    body = '{"resourceType":"Patient","name":[{"text":"a\\tb\\r\\nc"}]}'
    r = api.fhir("POST", "/fhir/Patient", body)
    assert r.status_code == 201, r.content
    assert r.json_body["name"][0]["text"] == "a\tb\r\nc"
