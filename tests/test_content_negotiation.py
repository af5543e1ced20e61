"""Content negotiation: Accept, _format and _pretty (hl7.org/fhir/R4B/http.html#mime-type)."""

from __future__ import annotations

import pytest

OBSERVATION = (
    '{"resourceType":"Observation","status":"final","code":{"text":"weight"},'
    '"valueQuantity":{"value":72.50,"unit":"kg"},'
    '"referenceRange":[{"low":{"value":1.000E+2}}]}'
)


@pytest.fixture
def user(django_user_model):
    """A user without a password: the API authenticates by token, and hashing costs 0.3 s."""
    return django_user_model.objects.create_user("clinician")


@pytest.fixture
def oid(api) -> str:
    r = api.fhir("POST", "/fhir/Observation", OBSERVATION)
    assert r.status_code == 201
    return r.json_body["id"]


def media_type(response) -> str:
    return response["Content-Type"].split(";")[0].strip()


def assert_406(response) -> None:
    assert response.status_code == 406, response.content
    assert media_type(response) == "application/fhir+json"
    assert response.json_body["resourceType"] == "OperationOutcome"
    assert response.json_body["issue"][0]["code"] == "not-supported"


def test_default_is_fhir_json(api, oid):
    r = api.get(f"/fhir/Observation/{oid}")
    assert r.status_code == 200
    assert media_type(r) == "application/fhir+json"
    assert "charset=utf-8" in r["Content-Type"]


@pytest.mark.parametrize(
    "fmt", ["json", "application/fhir+json", "application/fhir%2Bjson", "application/fhir+json;q=1"]
)
def test_format_json_gives_fhir_json(api, oid, fmt):
    r = api.fhir("GET", f"/fhir/Observation/{oid}?_format={fmt}")
    assert r.status_code == 200, r.content
    assert media_type(r) == "application/fhir+json"
    assert r.json_body["id"] == oid


def test_format_application_json_gives_application_json(api, oid):
    r = api.fhir("GET", f"/fhir/Observation/{oid}?_format=application/json")
    assert r.status_code == 200
    assert media_type(r) == "application/json"


@pytest.mark.parametrize(
    "fmt", ["xml", "application/fhir+xml", "application/fhir%2Bxml", "text/xml", "ttl", "html"]
)
def test_format_other_than_json_is_406(api, oid, fmt):
    assert_406(api.fhir("GET", f"/fhir/Observation/{oid}?_format={fmt}"))


def test_format_wins_over_accept(api, oid):
    r = api.fhir("GET", f"/fhir/Observation/{oid}?_format=json", HTTP_ACCEPT="application/fhir+xml")
    assert r.status_code == 200
    assert media_type(r) == "application/fhir+json"


@pytest.mark.parametrize(
    "accept", ["application/fhir+xml", "application/xml", "text/xml, application/xml;q=0.9"]
)
def test_accept_xml_only_is_406(api, oid, accept):
    assert_406(api.fhir("GET", f"/fhir/Observation/{oid}", HTTP_ACCEPT=accept))


def test_accept_xml_is_406_on_search_and_on_writes_too(api):
    assert_406(api.fhir("GET", "/fhir/Observation", HTTP_ACCEPT="application/fhir+xml"))
    r = api.fhir("POST", "/fhir/Observation", OBSERVATION, HTTP_ACCEPT="application/fhir+xml")
    assert_406(r)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json", "application/json"),
        ("application/fhir+json", "application/fhir+json"),
        ("application/fhir+json; fhirVersion=4.3", "application/fhir+json"),
        ("application/json+fhir", "application/fhir+json"),
        ("*/*", "application/fhir+json"),
        ("application/fhir+xml, application/fhir+json;q=0.5", "application/fhir+json"),
        ("text/html,application/xhtml+xml,*/*;q=0.8", "application/fhir+json"),
    ],
)
def test_accept(api, oid, accept, expected):
    r = api.fhir("GET", f"/fhir/Observation/{oid}", HTTP_ACCEPT=accept)
    assert r.status_code == 200, r.content
    assert media_type(r) == expected
    assert r.json_body["id"] == oid


def test_accept_application_json_on_an_error(api):
    r = api.fhir("GET", "/fhir/Observation/nobody", HTTP_ACCEPT="application/json")
    assert r.status_code == 404
    assert media_type(r) == "application/json"
    assert r.json_body["resourceType"] == "OperationOutcome"


def test_compact_by_default_and_decimals_keep_their_text(api, oid):
    r = api.get(f"/fhir/Observation/{oid}")
    assert b"\n" not in r.content
    assert b'"value":72.50' in r.content
    assert b'"value":1.000E+2' in r.content


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/Observation/{oid}",
        "/fhir/Observation/{oid}/_history/1",
        "/fhir/Observation?_id={oid}",
    ],
)
def test_pretty_indents_and_keeps_decimal_text(api, oid, path):
    r = api.get(path.format(oid=oid) + ("&" if "?" in path else "?") + "_pretty=true")
    assert r.status_code == 200
    text = r.content.decode()
    assert "\n" in text
    assert '\n  "resourceType": "' in text
    assert '"value": 72.50' in text
    assert '"value": 1.000E+2' in text
    assert "\n" + " " * 8 in text  # nested elements are indented too


def test_pretty_false_is_compact(api, oid):
    r = api.get(f"/fhir/Observation/{oid}?_pretty=false")
    assert b"\n" not in r.content


def test_pretty_on_an_operation_outcome(api):
    r = api.get("/fhir/Observation/nobody?_pretty=true")
    assert r.status_code == 404
    assert b'\n  "resourceType": "OperationOutcome"' in r.content


def test_format_and_pretty_are_not_search_parameters(api, oid):
    r = api.fhir(
        "GET",
        f"/fhir/Observation?_id={oid}&_format=json&_pretty=false",
        HTTP_PREFER="handling=strict",
    )
    assert r.status_code == 200, r.content
    assert r.json_body["total"] == 1


def test_metadata_honours_format_too(anon):
    assert_406(anon.fhir("GET", "/fhir/metadata?_format=xml"))
    r = anon.fhir("GET", "/fhir/metadata", HTTP_ACCEPT="application/json")
    assert media_type(r) == "application/json"
