"""``_summary`` and ``_elements`` (hl7.org/fhir/R4B/search.html#summary, #elements).

A shaped resource is a subset: it gets the ``SUBSETTED`` tag so that no client mistakes it for
the whole resource and writes it back.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from .. import json_io

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "Resource encoded in summary mode",
}
ALWAYS = ("resourceType", "id", "meta")


@cache
def _elements(resource_type: str) -> tuple[frozenset[str], frozenset[str]]:
    """(summary elements, mandatory elements) of a type, as JSON names (choice types expanded)."""
    model = get_fhir_model_class(resource_type)
    summary, mandatory = set(), set()
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        json_name = info.alias or name
        if extra.get("summary_element_property"):
            summary.add(json_name)
        if info.is_required() or extra.get("element_required"):
            mandatory.add(json_name)
    return frozenset(summary), frozenset(mandatory)


def _tagged(data: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    """The elements of ``keep``, with their primitive extensions (``_birthDate`` goes with
    ``birthDate``, json.html#primitive), ``id`` and ``meta``, tagged SUBSETTED."""
    out = {
        k: v
        for k, v in data.items()
        if k in keep or k in ALWAYS or (k[:1] == "_" and k[1:] in keep)
    }
    meta = dict(out.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    out["meta"] = meta
    return out


def shape(text: str, summary: str | None, elements: list[str]) -> Any:
    """The stored JSON ``text`` shaped as asked; the text itself when nothing is asked."""
    if not summary and not elements:
        return None
    data = json_io.loads(text)
    resource_type = data.get("resourceType", "")
    summary_names, mandatory = _elements(resource_type)
    if summary == "true":
        return _tagged(data, set(summary_names) | set(mandatory))
    if summary == "text":
        return _tagged(data, {"text"} | set(mandatory))
    if summary == "data":
        return _tagged(data, set(data) - {"text"})
    wanted = set()
    for element in elements:
        name = element.split(".", 1)[-1] if "." in element else element
        wanted.add(name)
        # value[x]: asking for "value" keeps valueQuantity, valueString, …
        wanted.update(
            k for k in data if k.startswith(name) and k[len(name) : len(name) + 1].isupper()
        )
    return _tagged(data, wanted | set(mandatory))
