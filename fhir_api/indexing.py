"""Writing search-index rows, in the same transaction as every write and by ``reindex``.

The index rows of a resource are always rebuilt from its current JSON (``search.extract``), so
a write and a reindex run the same code and cannot disagree.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Field

from .models import INDEX_MODELS, Resource
from .search.extract import COLUMNS, IndexRows, extract

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


def write_indexes(
    resource: Resource, data: dict[str, Any] | IndexRows | None, *, fresh: bool = False
) -> None:
    """Replace the index rows of ``resource`` with those of ``data`` (None: deleted), given as
    the resource's JSON or as the rows ``index_rows`` made of it.

    ``fresh`` says the resource was just inserted, so it has no rows to delete.
    """
    if not fresh:
        delete_indexes(resource)
    if data is None:
        return
    rows = (
        data
        if isinstance(data, IndexRows)
        else index_rows(resource.resource_type, resource.logical_id, data)
    )
    for model, objects in rows.models(resource, resource.resource_type).items():
        model.objects.bulk_create(objects)


# --- PostgreSQL: the index rows of a new resource in the statement that inserts it -------------

# Fields whose get_db_prep_save returns a str (or None) unchanged.
_TEXT_FIELDS = {"CharField", "TextField"}


@cache
def _insert_template(model: type) -> tuple[str, tuple[Field, ...]]:
    """One table's INSERT for the resource of the CTE ``r``, a parameter array per column.

    The arrays are cast to the columns' types as Django's own bulk insert does on PostgreSQL.
    """
    fields = tuple(model._meta.get_field(name) for name in ("param", *COLUMNS[model]))
    names = ", ".join(f.column for f in fields)
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in fields)
    patient = model._meta.get_field("patient").db_type(connection)
    sql = (
        f"INSERT INTO {model._meta.db_table} (resource_id, resource_type, patient, {names})"
        f" SELECT r.id, r.resource_type, %s::{patient}, u.* FROM r, UNNEST({arrays}) AS u"
    )
    return sql, fields


def insert_ctes(rows: IndexRows) -> tuple[list[str], list[Any]]:
    """CTEs that insert ``rows`` for the resource a CTE named ``r`` inserted (returning its
    ``id`` and ``resource_type``), and their parameters: one round trip for every table.

    Values are prepared by their fields (``get_db_prep_save``), as ``bulk_create`` does.
    """
    ctes: list[str] = []
    params: list[Any] = []
    for model, table_rows in rows.rows.items():
        if not table_rows:
            continue
        sql, fields = _insert_template(model)
        params.append(rows.patient)
        for field, values in zip(fields, zip(*table_rows, strict=True), strict=True):
            if field.get_internal_type() in _TEXT_FIELDS:
                # A str (or None) is what a text column's preparation would give back: skip the
                # call for it, the hot part of a create's CPU; anything else is prepared.
                prepared = [
                    v if v is None or type(v) is str else field.get_db_prep_save(v, connection)
                    for v in values
                ]
            else:
                prepared = [field.get_db_prep_save(v, connection) for v in values]
            params.append(prepared)
        ctes.append(f"i{len(ctes)} AS ({sql})")
    return ctes, params
