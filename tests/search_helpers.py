"""Helpers for the search tests: build data through the API and read searchsets as a client does."""

from __future__ import annotations

from typing import Any

STRICT = {"HTTP_PREFER": "handling=strict"}
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"


def create(api, resource: dict[str, Any]) -> str:
    """POST a resource and return the id the server gave it."""
    response = api.fhir("POST", f"/fhir/{resource['resourceType']}", resource)
    assert response.status_code == 201, response.json_body
    return response.json_body["id"]


def put(api, resource: dict[str, Any]) -> str:
    """PUT a resource with a chosen id (update as create)."""
    path = f"/fhir/{resource['resourceType']}/{resource['id']}"
    response = api.fhir("PUT", path, resource)
    assert response.status_code in (200, 201), response.json_body
    return resource["id"]


def search(api, query: str, **headers):
    """GET a search; ``query`` is ``Type?params``."""
    return api.fhir("GET", f"/fhir/{query}", **headers)


def bundle(api, query: str, **headers) -> dict[str, Any]:
    response = search(api, query, **headers)
    assert response.status_code == 200, (query, response.json_body)
    body = response.json_body
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    return body


def matches(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in body.get("entry", []) if e["search"]["mode"] == "match"]


def ids(api, query: str, **headers) -> set[str]:
    """The ids of the resources a search matches (one page of up to 1000)."""
    sep = "&" if "?" in query else "?"
    body = bundle(api, f"{query}{sep}_count=1000", **headers)
    found = [e["resource"]["id"] for e in matches(body)]
    assert len(found) == len(set(found)), f"{query}: a resource appears twice"
    assert body.get("total", len(found)) == len(found), (query, body.get("total"), found)
    return set(found)


def codeable(system: str, code: str, display: str | None = None, text: str | None = None):
    coding: dict[str, Any] = {"system": system, "code": code} if system else {"code": code}
    if display:
        coding["display"] = display
    concept: dict[str, Any] = {"coding": [coding]}
    if text:
        concept["text"] = text
    return concept


def ref(target: str) -> dict[str, str]:
    return {"reference": target}


def observation(
    subject: str | None,
    code: str,
    *,
    system: str = LOINC,
    display: str | None = None,
    value: Any = None,
    unit: str | None = None,
    status: str = "final",
    effective: str | None = None,
    components: list[tuple[str, float, str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A vital-sign-like Observation: a LOINC code, a subject and a value[x]."""
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": status,
        "code": codeable(system, code, display),
    }
    if subject:
        obs["subject"] = ref(subject)
    if effective:
        obs["effectiveDateTime"] = effective
    if isinstance(value, int | float) and not isinstance(value, bool):
        obs["valueQuantity"] = {"value": value, "system": UCUM, "code": unit, "unit": unit}
    elif isinstance(value, str):
        obs["valueString"] = value
    elif isinstance(value, dict):
        obs.update(value)
    if components:
        obs["component"] = [
            {
                "code": codeable(LOINC, c_code),
                "valueQuantity": {"value": c_value, "system": UCUM, "code": c_unit},
            }
            for c_code, c_value, c_unit in components
        ]
    obs.update(extra)
    return obs


def outcome_entries(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in body.get("entry", []) if e["search"]["mode"] == "outcome"]


def link(body: dict[str, Any], relation: str) -> str | None:
    for item in body.get("link", []):
        if item["relation"] == relation:
            return item["url"]
    return None
