"""The SQL of a usual search written straight from its index-row conditions.

A usual search (one type, no ``_sort``) is a conjunction of "the resource has index rows of
this parameter that meet these conditions" (``types.base.Rows``): ``fetch`` then asks the index
tables alone which resources match (see ``fetch._index_matches``). Built as QuerySets and
compiled by the ORM, such a search cost 2.5 ms of CPU before the database saw it, more than the
statement itself for a patient-scoped search. Here the SQL is put together from the rows'
descriptions: each condition (``code = '8867-4'``, ``low >= 2026-10-01``, a ``LIKE`` …) is
still one Django lookup compiled by Django, so its SQL and the adaptation of its value are the
ORM's on each backend; only the ANDs, ORs and subqueries around them are written here.

Anything else (a negated condition, an expression other than a lookup on the row's own columns,
a subquery value, ``None``, a lookup that can match nothing) makes ``matches`` answer None, and
the search goes through the ORM as before.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from django.core.exceptions import EmptyResultSet, FieldDoesNotExist, FieldError, FullResultSet
from django.db import connection
from django.db.models import Model, Q
from django.db.models.expressions import Col, Func, Value
from django.db.models.lookups import Lookup
from django.db.models.sql import Query
from django.db.models.sql.compiler import SQLCompiler

from .aliases import stored
from .types.base import Rows, index_rows

Statement = tuple[str, list[Any]]


# A resource type or search parameter code, which can be written in SQL as a plain literal.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z").match


class _Unsupported(Exception):
    """A condition this module does not write: the ORM builds the search."""


def matches(resource_types: tuple[str, ...], conditions: list[Q], snapshot: int | None):
    """``SELECT DISTINCT m.resource_id AS pk …``: the ids of the resources of the one type
    searched that meet every condition (each a ``having`` of index rows), at most ``snapshot``;
    None when some condition is not such rows, or the search is of several types."""
    found = parts(resource_types, conditions)
    return None if found is None else intersection(found, snapshot)


def parts(resource_types: tuple[str, ...], conditions: list[Q]) -> list[Statement] | None:
    """One parenthesised ``SELECT resource_id …`` of index rows per condition, for
    ``intersection``; None when ``matches`` would answer None."""
    if len(resource_types) != 1 or resource_types[0] == "*" or not conditions:
        return None
    found: list[Rows] = []
    for q in conditions:
        rows = index_rows(q)
        if rows is None or rows.ctx.resource_types != resource_types:
            return None
        found.append(rows)
    vendor = connection.vendor
    try:
        written = [_rows_sql(rows, _Table(vendor, rows.model)) for rows in found]
    except _Unsupported:
        return None
    return [(f"({sql})", params) for sql, params in written]


def intersection(parts: list[Statement], snapshot: int | None) -> Statement:
    """The resources (``pk``) with rows in every one of ``parts`` (parenthesised subqueries
    selecting ``resource_id``), at most ``snapshot``: the statement both this module and
    ``fetch._index_matches`` (for the QuerySets it is given) send."""
    sql = f"SELECT DISTINCT m.resource_id AS pk FROM {parts[0][0]} m"
    params = list(parts[0][1])
    where = []
    for sub_sql, sub_params in parts[1:]:
        where.append(f"m.resource_id IN {sub_sql}")
        params.extend(sub_params)
    if snapshot is not None:
        where.append("m.resource_id <= %s")
        params.append(snapshot)
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, params


def one_patient(conditions: list[Q]) -> bool:
    """Every condition is index rows of the one patient the search is scoped to."""
    for q in conditions:
        rows = index_rows(q)
        if rows is None or rows.patient is None:
            return False
    return bool(conditions)


class _Table:
    """The index table conditions are written for; Django's compiler for it, made when a
    condition is not among those compiled before."""

    def __init__(self, vendor: str, model: type[Model]) -> None:
        self.vendor, self.model = vendor, model
        self._compiler: SQLCompiler | None = None

    @property
    def compiler(self) -> SQLCompiler:
        if self._compiler is None:
            self._compiler = _compiler(self.model)
        return self._compiler


def _compiler(model: type[Model]) -> SQLCompiler:
    return Query(model).get_compiler(connection=connection)


def _rows_sql(rows: Rows, table: _Table) -> Statement:
    """``SELECT resource_id FROM <index table> WHERE …``, as ``rows.queryset()`` selects."""
    name = _quoted(table.vendor, table.model)
    resource_type = rows.ctx.resource_types[0]
    # A parameter that is the union of others is read from their rows (search.aliases).
    codes = stored(resource_type, rows.code)
    params: list[Any] = []
    literal = all(map(_NAME, (resource_type, *codes)))
    if literal:
        # The type and the parameter codes, which make the statement's shape, are written in
        # it: fewer parameters to adapt and send on every run of a prepared statement, and a
        # generic plan made knowing them (search.fetch.execute).
        where = [f"{name}.resource_type = '{resource_type}'"]
        param_sql = ", ".join(f"'{code}'" for code in codes)
    else:
        where = [f"{name}.resource_type = %s"]
        params.append(resource_type)
        param_sql = ", ".join(["%s"] * len(codes))
    if rows.patient is not None:
        where.append(f"{name}.patient = %s")
        params.append(rows.patient)
    where.append(
        f"{name}.param = {param_sql}" if len(codes) == 1 else f"{name}.param IN ({param_sql})"
    )
    if not literal:
        params.extend(codes)
    for condition in rows.conditions:
        written = _node(condition, table)
        if written is not None:
            where.append(written[0])
            params.extend(written[1])
    return f"SELECT {name}.resource_id FROM {name} WHERE {' AND '.join(where)}", params


@lru_cache(maxsize=64)
def _quoted(_vendor: str, model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _node(q: Q, table: _Table) -> Statement | None:
    """A Q's conditions joined by its connector; None for an empty Q, which Django drops."""
    if q.negated or q.connector not in (Q.AND, Q.OR):
        # NOT on a nullable column is more than NOT (Django adds IS NOT NULL): left to it.
        raise _Unsupported
    parts, params = [], []
    for child in q.children:
        if isinstance(child, Q):
            written = _node(child, table)
        elif isinstance(child, tuple):
            written = _lookup(child[0], child[1], table)
        elif isinstance(child, Lookup):
            written = _expression(child, table)
        else:
            raise _Unsupported
        if written is None:
            continue
        parts.append(written[0])
        params.extend(written[1])
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0], params
    return "(" + f" {q.connector} ".join(parts) + ")", params


def _lookup(path: str, value: Any, table: _Table) -> Statement:
    """``column__lookup=value`` on a column of the row's own table, compiled by Django.

    Most conditions repeat from search to search (the parameter's code system, the base URL of
    a reference, a LOINC code): their compiled SQL is kept (``_compiled``) by database, table,
    lookup and value, which determine it.
    """
    if isinstance(value, list):  # __in: the same SQL for the same items in a tuple
        value = tuple(value)
    if not _small(value):
        return _compile_lookup(path, value, table.compiler)
    # The types too: 1, 1.0 and True are equal keys but not the same value to adapt.
    types = tuple(map(type, value)) if isinstance(value, tuple) else type(value)
    try:
        return _compiled(table.vendor, table.model, path, value, types)
    except TypeError:  # an unhashable value: compiled each time
        return _compile_lookup(path, value, table.compiler)


# What the caches keep is bounded: a client's long values (a POSTed _search takes megabytes)
# are compiled each time rather than kept.
MAX_CACHED_TEXT = 256
MAX_CACHED_ITEMS = 16


def _small(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_CACHED_TEXT
    if isinstance(value, tuple):
        return len(value) <= MAX_CACHED_ITEMS and all(
            not isinstance(v, (str, tuple)) or (isinstance(v, str) and _small(v)) for v in value
        )
    return True


@lru_cache(maxsize=4096)
def _compiled(_vendor: str, model: type[Model], path: str, value: Any, _types: Any) -> Statement:
    sql, params = _compile_lookup(path, value, _compiler(model))
    return sql, tuple(params)


def _compile_lookup(path: str, value: Any, compiler: SQLCompiler) -> Statement:
    name, _, lookup_name = path.partition("__")
    if "__" in lookup_name or value is None or _is_expression(value):
        raise _Unsupported
    if isinstance(value, (list, tuple, set)) and any(_is_expression(v) for v in value):
        raise _Unsupported
    model = compiler.query.model
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        raise _Unsupported from None
    if field.is_relation or not field.concrete:
        raise _Unsupported
    lookup_class = field.get_lookup(lookup_name or "exact")
    if lookup_class is None:
        raise _Unsupported
    try:
        return compiler.compile(lookup_class(field.get_col(model._meta.db_table), value))
    except (EmptyResultSet, FullResultSet):
        raise _Unsupported from None


def _expression(lookup: Lookup, table: _Table) -> Statement:
    """A lookup over functions of the row's own columns (``LEFT(url, 23) = …``, uri.below_q)."""
    if not _small(lookup.rhs):
        return _compile_expression(lookup, table.compiler)
    try:
        return _compiled_expression(table.vendor, table.model, lookup, type(lookup.rhs))
    except TypeError:  # an unhashable value: compiled each time
        return _compile_expression(lookup, table.compiler)


@lru_cache(maxsize=1024)
def _compiled_expression(_vendor: str, model: type[Model], lookup: Lookup, _rhs: type) -> Statement:
    sql, params = _compile_expression(lookup, _compiler(model))
    return sql, tuple(params)


def _compile_expression(lookup: Lookup, compiler: SQLCompiler) -> Statement:
    try:
        resolved = lookup.resolve_expression(compiler.query, allow_joins=False)
    except FieldError:
        raise _Unsupported from None
    table = compiler.query.model._meta.db_table
    if not isinstance(resolved, Lookup) or not _own_columns(resolved.lhs, table):
        raise _Unsupported
    if _is_expression(resolved.rhs) and not _own_columns(resolved.rhs, table):
        raise _Unsupported
    try:
        return compiler.compile(resolved)
    except (EmptyResultSet, FullResultSet):
        raise _Unsupported from None


def _is_expression(value: Any) -> bool:
    return hasattr(value, "resolve_expression")


def _own_columns(expression: Any, table: str) -> bool:
    """Only columns of ``table``, constants and plain functions of them (no subquery)."""
    if isinstance(expression, Col):
        return expression.alias == table
    if isinstance(expression, Value):
        return True
    if not isinstance(expression, Func):  # Subquery, Exists, OuterRef … are not
        return False
    return all(_own_columns(e, table) for e in expression.get_source_expressions())
