"""Search-index extraction, run in the same transaction as every write and by ``reindex``.

The index rows of a resource are always rebuilt from its current JSON by ``write_indexes``, so a
write and a reindex run the same code and cannot disagree.
"""

from __future__ import annotations

from typing import Any

from .models import Resource, TokenIndex


def _identifiers(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def extract_tokens(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Token rows (param, system, code) of a resource.

    ``identifier`` (Identifier.system | Identifier.value) is indexed for every type that has
    it: it is what conditional create, update and delete, and conditional references in
    transactions, look resources up by (hl7.org/fhir/R4B/http.html#ccreate).
    """
    rows: list[tuple[str, str, str]] = []
    for ident in _identifiers(data.get("identifier")):
        value = ident.get("value")
        if isinstance(value, str) and value:
            system = ident.get("system")
            rows.append(("identifier", system if isinstance(system, str) else "", value))
    return rows


def write_indexes(resource: Resource, data: dict[str, Any] | None, *, fresh: bool = False) -> None:
    """Replace the index rows of ``resource`` with those of ``data`` (None: deleted)."""
    if not fresh:
        TokenIndex.objects.filter(resource=resource).delete()
    if data is None:
        return
    rows = [
        TokenIndex(
            resource=resource,
            resource_type=resource.resource_type,
            param=param,
            system=system[:255],
            code=code[:255],
        )
        for param, system, code in extract_tokens(data)
    ]
    if rows:
        TokenIndex.objects.bulk_create(rows)
