"""FHIR JSON has no empty arrays or objects (hl7.org/fhir/R4B/json.html): answers leave an
element out when it has nothing in it (a Bundle with no results has no ``entry``), and a
resource sent with an empty array or object is a 422 naming where."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_api.models import Resource


def empties(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        here = [path or "$"] if not value else []
        return here + [p for k, v in value.items() for p in empties(v, f"{path}.{k}")]
    if isinstance(value, list):
        here = [path or "$"] if not value else []
        return here + [p for i, v in enumerate(value) for p in empties(v, f"{path}[{i}]")]
    return []


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/Patient?family=Nobody",
        "/fhir/Patient?_count=0",
        "/fhir/Patient?_summary=count",
        "/fhir?_type=Patient",
        "/fhir/_history",
        "/fhir/Patient/_history?_count=0",
        "/fhir/Observation/_history",
        "/fhir/Observation/$lastn?patient=nobody",
        "/fhir/metadata",
    ],
)
def test_answers_with_nothing_in_them_have_no_empty_arrays(api, path):
    r = api.fhir("GET", path)
    assert r.status_code == 200, r.content
    assert empties(r.json_body) == []
    if r.json_body["resourceType"] == "Bundle":
        assert "entry" not in r.json_body


def test_empty_transaction_and_batch_answer_without_entry(api):
    for kind in ("transaction", "batch"):
        for bundle in ({"type": kind, "entry": []}, {"type": kind}):
            r = api.fhir("POST", "/fhir", {"resourceType": "Bundle", **bundle})
            assert r.status_code == 200, r.content
            assert r.json_body == {"resourceType": "Bundle", "type": f"{kind}-response"}


def test_a_search_with_results_still_lists_them(api):
    api.fhir("POST", "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Ng"}]})
    body = api.fhir("GET", "/fhir/Patient?family=Ng").json_body
    assert len(body["entry"]) == 1
    assert empties(body) == []


@pytest.mark.parametrize(
    ("resource", "where"),
    [
        ({"resourceType": "Patient", "name": []}, "Patient.name"),
        ({"resourceType": "Patient", "name": [{}]}, "Patient.name[0]"),
        ({"resourceType": "Patient", "name": [{"given": []}]}, "Patient.name[0].given"),
        ({"resourceType": "Patient", "meta": {"tag": []}}, "Patient.meta.tag"),
        ({"resourceType": "Patient", "maritalStatus": {}}, "Patient.maritalStatus"),
    ],
)
def test_a_resource_with_an_empty_array_or_object_is_422(api, resource, where):
    r = api.fhir("POST", "/fhir/Patient", resource)
    assert r.status_code == 422, r.content
    issue = r.json_body["issue"][0]
    assert issue["expression"] == [where]
    assert issue["code"] == "structure"
    assert not Resource.objects.exists()
