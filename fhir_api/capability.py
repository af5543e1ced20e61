"""The CapabilityStatement at ``GET [base]/metadata`` (hl7.org/fhir/R4B/http.html#capabilities).

Generated from what this server implements: the resource types it stores, the interactions the
views route, the search parameters the search module applies. Nothing is claimed that does not
work; ``tests/test_capability.py`` exercises what it declares.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .resource_types import RESOURCE_TYPES
from .search.query import supported_params

SOFTWARE_VERSION = "0.1.0"
TYPE_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)

# The operations ``fhir_api.operations`` implements, by resource type (operations.html).
OPERATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "Patient": (("everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything"),),
    "Observation": (("lastn", "http://hl7.org/fhir/OperationDefinition/Observation-lastn"),),
}


def _operations(resource_type: str) -> list[tuple[str, str]]:
    """This app's operations and those other apps registered (operations.register)."""
    from .operations import EXTENSIONS

    found = list(OPERATIONS.get(resource_type, ()))
    found += [
        (e.name, e.definition) for e in EXTENSIONS.values() if e.resource_type == resource_type
    ]
    return found


# The common parameters a system-level search takes (search.html#all).
SYSTEM_SEARCH_PARAMS = ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source")


@lru_cache(maxsize=1)
def _resources() -> tuple[dict[str, Any], ...]:
    return tuple(
        {
            "type": resource_type,
            "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "modified-since",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "searchParam": [
                {"name": name, "definition": url, "type": kind}
                for name, kind, url in supported_params(resource_type)
            ],
            **(
                {"operation": [{"name": n, "definition": d} for n, d in _operations(resource_type)]}
                if _operations(resource_type)
                else {}
            ),
        }
        for resource_type in sorted(RESOURCE_TYPES)
    )


def capability_statement(base: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-27",
        "publisher": "CloudDTH",
        "kind": "instance",
        "software": {"name": "CloudDTH", "version": SOFTWARE_VERSION},
        "implementation": {"description": "CloudDTH FHIR server", "url": base},
        "fhirVersion": "4.3.0",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "cors": False,
                    "description": (
                        "Send Authorization: Bearer <token>; tokens are issued with"
                        " `python manage.py issue_token <username>`."
                    ),
                },
                "resource": list(_resources()),
                "interaction": [
                    {"code": "transaction"},
                    {"code": "batch"},
                    {"code": "history-system"},
                    {"code": "search-system"},
                ],
                # What GET [base]?_type=…&… applies across types (search.html#searchcontexts).
                "searchParam": [
                    {"name": name, "definition": url, "type": kind}
                    for name, kind, url in supported_params("*")
                    if name in SYSTEM_SEARCH_PARAMS
                ],
            }
        ],
    }
