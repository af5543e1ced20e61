"""The index SQL of a search, written once per shape: the same search of another patient.

A monitoring screen or an EHR asks one question of many patients all day
(``Observation?patient=X&code=…&date=…``). Turning its criteria into conditions and writing
their SQL (``query.conditions``, ``index_sql``) cost more CPU than PostgreSQL's answer to such
a patient-scoped search, and it gave the same statement each time but for the patient id.

So the statement's parts are written once per *shape*: the search with the id of the patient it
is scoped to (``query.scoping``) replaced by a stand-in id. The stand-in then appears in
the written parameters exactly where the patient's id goes (the rows' ``patient`` column, the
reference's ``target_id``), and each search of that shape gets the parts with its own patient's
id put there. A shape whose stand-in turns up anywhere else (inside a longer value, such as
an absolute URL) is not kept: its searches are written each time, as are searches with chains,
``_has`` or ``_list`` (their SQL holds subqueries), ``_sort``, several types, and long queries.

The parts depend only on the key: database vendor, the request's base URL (which references
are ours, ``reference.own_base``), the type and the criteria as given. No condition reads the
database while it is written (``index_sql`` refuses subquery values), so a kept statement never
holds data: a resource written after its shape was kept is found like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.db import connection

from ..validation import ID_RE
from . import index_sql, query
from .params import Criterion
from .types import reference

Statement = index_sql.Statement

# An id no client sends: a search that holds it anywhere is written the usual way.
STAND_IN = "clouddth-search-shape-patient"
SHAPES = 512
# Longer searches (a POSTed _search can be long) are written each time, not kept.
MAX_KEY_TEXT = 2048


def keepable(criterion: Criterion) -> bool:
    """A criterion a kept statement may hold: not a chain, ``_has`` or ``_list``, whose SQL
    holds subqueries."""
    return criterion.chain is None and criterion.has is None and criterion.type != "list"


def template(params: Sequence[Any]) -> tuple | None:
    """``params`` to keep, if the stand-in is in them only as whole values (``given`` can
    then put a patient's id there); None if it is inside a longer one."""
    for p in params:
        if isinstance(p, str) and STAND_IN in p and p != STAND_IN:
            return None
    return tuple(params)


def given(params: Sequence[Any], patient: str) -> list[Any]:
    """A kept ``template`` with ``patient``'s id where the stand-in stood."""
    return [patient if p == STAND_IN else p for p in params]


def matches(request: query.SearchRequest) -> tuple[Statement, bool] | None:
    """(``index_sql.matches``'s statement, whether it reads one patient's rows only) for a
    usual search, from its shape; None when its shape is not kept (the caller writes it)."""
    if request.sort or len(request.resource_types) != 1:
        return None
    scoped = query.scoping(request)
    patient = None
    items: list[tuple[str, str]] = []
    size = 0
    for i, (name, value, criterion) in enumerate(request.criteria):
        if not keepable(criterion) or STAND_IN in value:
            return None
        if scoped is not None and i == scoped[0]:
            patient = scoped[1]
            prefix = value[: len(value) - len(patient)]
            # Only a plain id given as "X" or "Patient/X": anything else is written each time.
            if not ID_RE.fullmatch(patient) or not value.endswith(patient):
                return None
            if prefix not in ("", "Patient/"):
                return None
            value = prefix + STAND_IN
        items.append((name, value))
        size += len(name) + len(value)
    if not items or size > MAX_KEY_TEXT:
        return None
    shape = _shape(connection.vendor, reference.own_base(), request.resource_types[0], tuple(items))
    if shape is None:
        return None
    params = given(shape.params, patient) if patient is not None else list(shape.params)
    if request.snapshot is None:
        return (shape.sql, params), shape.one_patient
    params.append(request.snapshot)
    return (shape.sql_at_snapshot, params), shape.one_patient


@dataclass(frozen=True)
class Shape:
    """A kept shape: ``index_sql.intersection`` of its parts, without and with the snapshot
    bound (its one more parameter, last), and the parameters before it, the stand-in where
    the patient's id goes. The texts are the same objects on every search of the shape, so
    the statement caches after them (``fetch``, ``prepared``) hash each text once."""

    sql: str
    sql_at_snapshot: str
    params: tuple
    one_patient: bool


@lru_cache(maxsize=SHAPES)
def _shape(
    _vendor: str, _base: str, resource_type: str, items: tuple[tuple[str, str], ...]
) -> Shape | None:
    """A shape's statement and whether it reads one patient's rows; None when the shape's
    SQL is not written by ``index_sql`` or the stand-in is not only the id.

    Written on the connection and base URL of the request being served, which the key names
    (``_vendor``, ``_base``). A BadRequest from a criterion propagates and is not kept."""
    request = query.parse(resource_type, list(items), strict=True)
    stand_in_scoped = query.scoped_patient(request) == STAND_IN
    where = query.conditions(request)
    parts = index_sql.parts(request.resource_types, where)
    if parts is None:
        return None
    kept = [(sql, template(params)) for sql, params in parts]
    if any(params is None for _sql, params in kept):
        return None
    placed = any(STAND_IN in params for _sql, params in kept)
    if placed != stand_in_scoped:
        return None
    sql, params = index_sql.intersection(kept, None)
    # The snapshot's bound is the last condition and parameter (index_sql.intersection).
    at_snapshot, _params = index_sql.intersection(kept, 0)
    return Shape(sql, at_snapshot, tuple(params), index_sql.one_patient(where))
