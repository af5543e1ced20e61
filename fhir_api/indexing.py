"""Writing search-index rows, in the same transaction as every write and by ``reindex``.

The index rows of a resource are always rebuilt from its current JSON (``search.extract``), so
a write and a reindex run the same code and cannot disagree.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from .models import INDEX_MODELS, Resource
from .search.extract import IndexRows, extract

_DELETE_ALL = "; ".join(
    f"DELETE FROM {m._meta.db_table} WHERE resource_id = %(pk)s" for m in INDEX_MODELS
)


def delete_indexes(resource: Resource) -> None:
    """Remove every index row of ``resource``: one round trip on PostgreSQL."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_DELETE_ALL, {"pk": resource.pk})
        else:
            for model in INDEX_MODELS:
                cursor.execute(
                    f"DELETE FROM {model._meta.db_table} WHERE resource_id = %s", [resource.pk]
                )


def index_rows(resource_type: str, logical_id: str, data: dict[str, Any]) -> IndexRows:
    """The index rows of a resource stored as ``logical_id`` (a create ignores the body's id,
    and a Patient's compartment is its stored id, not the one its body came with)."""
    if data.get("id") != logical_id:
        data = {**data, "id": logical_id}
    return extract(resource_type, data)


def write_indexes(resource: Resource, data: dict[str, Any] | None, *, fresh: bool = False) -> None:
    """Replace the index rows of ``resource`` with those of ``data`` (None: deleted).

    ``fresh`` says the resource was just inserted, so it has no rows to delete.
    """
    if not fresh:
        delete_indexes(resource)
    if data is None:
        return
    rows = index_rows(resource.resource_type, resource.logical_id, data)
    for model, objects in rows.models(resource, resource.resource_type).items():
        model.objects.bulk_create(objects)
