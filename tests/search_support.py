"""Small helpers shared by the search-semantics tests (date, quantity, sort, include, system…).

Data is written through the API (so the index rows are the ones a real write makes) and read
back as a client does, from the searchset Bundle.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
STRICT = {"HTTP_PREFER": "handling=strict"}
# Observation.category of a vital sign (the vitalsigns profile's fixed coding).
VITAL_SIGNS = [
    {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs",
            }
        ]
    }
]


def put(api, resource: dict[str, Any]) -> dict[str, Any]:
    """PUT a resource under its own id (update as create) and return what the server stored."""
    response = api.fhir("PUT", f"/fhir/{resource['resourceType']}/{resource['id']}", resource)
    assert response.status_code in (200, 201), response.json_body
    return response.json_body


def get(api, query: str, **headers) -> dict[str, Any]:
    """GET ``[base]/{query}`` and return the searchset Bundle (asserting a 200)."""
    response = api.fhir("GET", f"/fhir/{query}" if query else "/fhir", **headers)
    assert response.status_code == 200, (query, response.json_body)
    body = response.json_body
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset", body
    return body


def status(api, query: str, **headers) -> int:
    return api.fhir("GET", f"/fhir/{query}", **headers).status_code


def entries(body: dict[str, Any], mode: str = "match") -> list[dict[str, Any]]:
    return [e for e in body.get("entry", []) if e.get("search", {}).get("mode") == mode]


def ordered(body: dict[str, Any], mode: str = "match") -> list[str]:
    """The ids of the entries of one mode, in Bundle order."""
    return [e["resource"]["id"] for e in entries(body, mode)]


def found(api, query: str, **headers) -> set[str]:
    """The ids a search matches, from one page of up to 1000; checks no duplicates and the total."""
    sep = "&" if "?" in query else "?"
    body = get(api, f"{query}{sep}_count=1000", **headers)
    ids = ordered(body)
    assert len(ids) == len(set(ids)), (query, ids)
    assert body.get("total") == len(ids), (query, body.get("total"), ids)
    return set(ids)


def link(body: dict[str, Any], relation: str) -> str | None:
    for item in body.get("link", []):
        if item["relation"] == relation:
            return item["url"]
    return None


def follow(url: str) -> str:
    """A Bundle link as a path for the test client (``/fhir/Type?…``)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}".split("/fhir/", 1)[1]


def link_params(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def observation(oid: str, **fields: Any) -> dict[str, Any]:
    """A minimal valid Observation with the given id and extra elements."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
        **fields,
    }


def quantity(value: float | int | str, code: str | None = None, **more: Any) -> dict[str, Any]:
    q: dict[str, Any] = {"value": value}
    if code is not None:
        q.update(system=UCUM, code=code, unit=code)
    q.update(more)
    return q
