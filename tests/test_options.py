"""OPTIONS: 200 with an ``Allow`` header (RFC 9110 §9.3.7), never DRF's view description; at
the base, the CapabilityStatement as older FHIR clients ask for it
(hl7.org/fhir/R4B/http.html#capabilities)."""

from __future__ import annotations

import pytest

from fhir_api import json_io


def allowed(response) -> set[str]:
    return {m.strip() for m in response["Allow"].split(",")}


def test_options_on_the_base_is_the_capability_statement(anon):
    for path in ("/fhir", "/fhir/"):
        r = anon.options(path)
        assert r.status_code == 200, r.content
        body = json_io.loads(r.content)
        assert body["resourceType"] == "CapabilityStatement"
        assert body["fhirVersion"] == "4.3.0"
        assert {"GET", "POST", "OPTIONS"} <= allowed(r)


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/fhir/Patient", {"GET", "POST", "PUT", "PATCH", "DELETE"}),
        ("/fhir/Patient/abc", {"GET", "PUT", "PATCH", "DELETE"}),
        ("/fhir/Patient/abc/_history", {"GET"}),
        ("/fhir/Patient/abc/_history/1", {"GET"}),
        ("/fhir/metadata", {"GET"}),
        ("/fhir/Patient/abc/$everything", {"GET", "POST"}),
    ],
)
def test_options_answers_allow_without_a_body(api, anon, path, methods):
    for client in (api, anon):
        r = client.options(path)
        assert r.status_code == 200, r.content
        assert r.content == b""
        # Django answers HEAD wherever GET is allowed.
        assert allowed(r) == methods | {"OPTIONS", "HEAD"}


def test_options_on_a_path_that_is_not_an_endpoint_is_404(anon):
    for path in ("/fhir/Patient/abc/def/ghi", "/fhir/Patient/$nothing"):
        r = anon.options(path)
        assert r.status_code == 404
        assert json_io.loads(r.content)["resourceType"] == "OperationOutcome"


def test_options_never_answers_drf_metadata(api):
    r = api.options("/fhir/Observation")
    assert b"renders" not in r.content and b"parses" not in r.content
    assert r.content == b""


def test_options_on_a_registered_operation(anon):
    r = anon.options("/fhir/Patient/abc/$twin")
    assert r.status_code == 200, r.content
    assert allowed(r) == {"GET", "POST", "OPTIONS"}
    assert anon.options("/fhir/Patient/$twin").status_code == 404
