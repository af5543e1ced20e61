"""Errors Django raises around the FHIR views are OperationOutcomes too, never HTML or a 500
(hl7.org/fhir/R4B/http.html#errors)."""

from __future__ import annotations

from fhir_api import json_io


def test_a_host_not_allowed_is_a_400_operation_outcome_under_fhir(api):
    r = api.get("/fhir/Patient", HTTP_HOST="evil.example")
    assert r.status_code == 400
    assert r["Content-Type"].startswith("application/fhir+json")
    body = json_io.loads(r.content)
    assert body["resourceType"] == "OperationOutcome"
    assert "evil.example" in body["issue"][0]["diagnostics"]


def test_a_host_not_allowed_elsewhere_is_django_s_page(client):
    r = client.get("/admin/", HTTP_HOST="evil.example")
    assert r.status_code == 400
    assert r["Content-Type"].startswith("text/html")


def test_too_many_form_fields_in_a_post_search_is_a_400(api):
    body = "&".join(f"name=x{i}" for i in range(1200))
    r = api.post(
        "/fhir/Patient/_search", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert r.status_code == 400, r.content
    assert json_io.loads(r.content)["resourceType"] == "OperationOutcome"
