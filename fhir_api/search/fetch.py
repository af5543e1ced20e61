"""Reading a search's page, total and snapshot in one statement (hl7.org/fhir/R4B/search.html).

A search needs up to three answers from the database: the rows of the page, the total
(``_total=accurate``, the default) and, on a first page, the snapshot that later pages are cut
at (the newest resource row, see ``query.snapshot_now``). Asked one by one they cost three round
trips, three plannings and three compilations by the ORM; on a busy server each round trip also
waits for the database to be scheduled, and that, not the work, was most of a search's latency.

So one statement answers all three. In the usual order (by row, no ``_sort``) the search's
query is compiled once, as the set of matching ids, which the statement materialises once and
then counts, pages through (the ``stop - start`` smallest ids from ``start``) and joins to the
resource rows of that page only:

    WITH matches AS MATERIALIZED (<the search>),
         page AS (SELECT pk FROM matches ORDER BY pk LIMIT … OFFSET …)
    SELECT r.id, r.resource_type, r.logical_id, r.content,
           (SELECT COUNT(*) FROM matches), (SELECT MAX(id) FROM fhir_resource)
    FROM page LEFT JOIN fhir_resource r ON r.id = page.pk …

With ``_sort`` the ORM's page query is kept (its sort keys are annotations) and the total and
snapshot ride along it as scalar subqueries. Either way the two scalars are uncorrelated, so the
database evaluates each once, in the same MVCC snapshot as the rows: a first page needs no
``id <= snapshot`` filter, as every row it sees is at most the newest one it sees. An empty page
carries no row for them to ride along; the CTE form then returns one row of NULLs with them,
and only the ``_sort`` form asks a second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.db.models.expressions import Col, RawSQL
from django.db.models.lookups import Exact, In, LessThanOrEqual
from django.db.models.sql import Query
from django.db.models.sql.where import AND

from .. import prepared
from ..models import INDEX_MODELS, ReferenceIndex, Resource
from . import index_sql
from .include import MAX_INCLUDED
from .types.reference import own_base

TOTAL = "search_total"
SNAPSHOT = "search_snapshot"
PAGE_FIELDS = ("resource_type", "logical_id", "content")
_FIELD_NAMES = ("id", *PAGE_FIELDS)
_TABLE = Resource._meta.db_table


class PageRow(NamedTuple):
    """A resource of a page, with what its Bundle entry and ``_include`` read. Not a model
    instance: making one per row (its ``__init__``, its pre/post init signals) cost a tenth of
    the CPU of a patient's search with a page of twenty. Its fields are ``_FIELD_NAMES``, in
    their order (``id`` as ``pk``), as the statements select them."""

    pk: int
    resource_type: str
    logical_id: str
    content: str

    @property
    def id(self) -> int:
        return self.pk


@dataclass
class Fetched:
    rows: list[Resource | PageRow]
    total: int | None
    snapshot: int | None
    included: list[Resource | PageRow] | None = None  # None: includes were not followed here


@dataclass(frozen=True)
class Followed:
    """A forward ``_include`` to follow in the page's statement: the reference parameter (None:
    any) and the target type (None: any)."""

    param: str | None
    target_type: str | None


def _ids(qs: QuerySet) -> tuple[str, list]:
    sql, params = qs.order_by().values("pk").query.sql_with_params()
    return sql, list(params)


def _index_matches(qs: QuerySet) -> tuple[str, list] | None:
    """The ids ``qs`` matches, from the index tables alone, when ``qs`` is only a conjunction
    of "row id in (index rows of this type and parameter …)" (every usual criterion is).

    Index rows exist only for current, undeleted resources and carry their resource's type
    (``indexing.write_indexes`` removes a deleted resource's rows in the same transaction), so
    such a search needs no row of ``fhir_resource`` to decide what matches: counting 167,000
    matches then reads one index instead of visiting as many resource rows. None when any
    condition is of another kind (``_id``, ``_lastUpdated``, ``:not``, ``:missing=true``,
    ``_has``, several types): the caller then uses the whole query.
    """
    query = qs.query
    if len(query.alias_map) != 1 or query.combinator or query.distinct or query.annotations:
        return None
    resource_type = None
    subqueries: list[Query] = []
    snapshot = None
    for child in query.where.children:
        lhs = getattr(child, "lhs", None)
        if not isinstance(lhs, Col) or lhs.alias != _TABLE:
            return None
        name = lhs.target.attname
        if isinstance(child, Exact) and name == "deleted" and child.rhs is False:
            continue
        if isinstance(child, Exact) and name == "resource_type" and isinstance(child.rhs, str):
            resource_type = child.rhs
        elif isinstance(child, LessThanOrEqual) and name == "id" and isinstance(child.rhs, int):
            snapshot = child.rhs
        elif isinstance(child, In) and name == "id" and isinstance(child.rhs, Query):
            subqueries.append(child.rhs)
        else:
            return None
    if resource_type is None or not subqueries:
        return None
    if not all(_index_rows_of(sub, resource_type) for sub in subqueries):
        return None
    compiler = query.get_compiler(connection=connection)
    return index_sql.intersection([compiler.compile(sub) for sub in subqueries], snapshot)


def _index_rows_of(sub: Query, resource_type: str) -> bool:
    """``sub`` selects ``resource_id`` of index rows of ``resource_type``, plainly."""
    if sub.model not in INDEX_MODELS or tuple(sub.values_select) != ("resource_id",):
        return False
    if sub.low_mark or sub.high_mark is not None or sub.distinct or sub.combinator:
        return False
    if sub.where.connector != AND or sub.where.negated:
        return False
    return any(
        isinstance(c, Exact)
        and isinstance(c.lhs, Col)
        and c.lhs.target.attname == "resource_type"
        and c.rhs == resource_type
        for c in sub.where.children
    )


def _snapshot_sql() -> str:
    return f"SELECT MAX(id) FROM {_TABLE}"


def fetch(
    qs: QuerySet | None,
    *,
    start: int,
    stop: int,
    total: bool,
    snapshot: bool,
    by_pk: bool = True,
    includes: list[Followed] | None = None,
    shown: int = 0,
    ids: tuple[str, list] | None = None,
    prepare: bool = False,
) -> Fetched:
    """Rows ``[start:stop]`` of ``qs`` (none if ``stop <= start``), with the count of all its
    rows if ``total`` and the newest resource row id if ``snapshot``, in one statement.

    ``by_pk``: ``qs`` is ordered by primary key alone (a search without ``_sort``).
    ``includes``: forward ``_include`` references to follow from the first ``shown`` rows, in
    the same statement (``Fetched.included``); only with ``by_pk``.
    ``ids``: the SQL of the ids ``qs`` matches, when the caller has it (``query.matches_sql``);
    ``qs`` may then be None.
    ``prepare``: run the statement prepared once per connection (``_execute``).
    """
    if by_pk:
        if ids is None:
            assert qs is not None
            ids = _index_matches(qs) or _ids(qs)
        return _fetch_by_pk(ids, start, stop, total, snapshot, includes or [], shown, prepare)
    assert not includes and qs is not None
    return _fetch_sorted(qs, start, stop, total, snapshot)


def _included_sql(includes: list[Followed], base: str) -> tuple[str, list]:
    """The resources the shown rows reference through ``includes``, as ``include.included``
    finds them in its first round: not deleted, not among the shown rows, each once."""
    ref = ReferenceIndex._meta.db_table
    # Empty strings as parameters, not literals: the statement can then be prepared
    # (prepared.numbered refuses quoted literals).
    ors, params = [], [""]
    for followed in includes:
        conditions = ["TRUE"]
        if followed.param is not None:
            conditions.append("x.param = %s")
            params.append(followed.param)
        if followed.target_type is not None:
            conditions.append("x.target_type = %s")
            params.append(followed.target_type)
        ors.append("(" + " AND ".join(conditions) + ")")
    local = ""
    if base:  # another server's Patient/1 is not ours (reference.local_q)
        local = " AND (x.url = %s OR SUBSTR(x.url, 1, %s) = %s)"
        params.extend(["", len(base) + 1, base + "/"])
    columns = ", ".join(f"r.{name}" for name in _FIELD_NAMES)
    sql = (
        f"SELECT {columns} FROM {_TABLE} r"
        f" WHERE (r.resource_type, r.logical_id) IN ("
        f"SELECT x.target_type, x.target_id FROM {ref} x"
        f" WHERE x.resource_id IN (SELECT pk FROM shown) AND x.target_id <> %s"
        f" AND ({' OR '.join(ors)}){local})"
        f" AND NOT r.deleted AND r.id NOT IN (SELECT pk FROM shown)"
        f" ORDER BY r.id LIMIT {MAX_INCLUDED}"
    )
    return sql, params


def _fetch_by_pk(
    ids: tuple[str, list],
    start: int,
    stop: int,
    total: bool,
    snapshot: bool,
    includes: list[Followed],
    shown: int,
    prepare: bool = False,
) -> Fetched:
    ids_sql, params = ids
    if stop <= start and not (total or snapshot):
        return Fetched([], None, None)
    rows_wanted = stop > start
    with connection.cursor() as cursor:
        sql, included_params = _page_statement(
            cursor.db.vendor,
            own_base() if includes else "",
            ids_sql,
            rows_wanted,
            total,
            snapshot,
            tuple(includes),
        )
        if rows_wanted:
            params = [*params, stop - start, start]
            if includes:
                params += [shown, *included_params]
        execute(cursor, sql, params, prepare)
        found = cursor.fetchall()
    if not rows_wanted:
        values = list(found[0])
        return Fetched([], values.pop(0) if total else None, values.pop(0) if snapshot else None)
    rows = [PageRow._make(v[1:5]) for v in found if v[0] == 0 and v[1] is not None]
    included = [PageRow._make(v[1:5]) for v in found if v[0] == 1]
    scalar_values = next((list(v[5:]) for v in found if v[0] == 0), [])
    return Fetched(
        rows,
        scalar_values.pop(0) if total else None,
        scalar_values.pop(0) if snapshot else None,
        included if includes else None,
    )


@lru_cache(maxsize=256)
def _page_statement(
    vendor: str,
    base: str,
    ids_sql: str,
    rows: bool,
    total: bool,
    snapshot: bool,
    includes: tuple[Followed, ...],
) -> tuple[str, tuple]:
    """The statement of ``_fetch_by_pk`` around the search's ``ids_sql``, and the parameters
    of its includes (after the page's ``LIMIT``, ``OFFSET`` and shown count). It depends only
    on its arguments: put together once, not on each search of the same shape (assembling
    its text was a quarter of the CPU a patient's search spends outside the database).
    ``base``: ``own_base()``, which the includes' SQL reads."""
    scalars = []
    if total:
        scalars.append("(SELECT COUNT(*) FROM matches)")
    if snapshot:
        scalars.append(f"({_snapshot_sql()})")
    if not rows:
        return f"WITH matches AS ({ids_sql}) SELECT {', '.join(scalars)}", ()
    materialized = "MATERIALIZED " if vendor == "postgresql" and total else ""
    columns = ", ".join(f"r.{name}" for name in _FIELD_NAMES)
    extra = "".join(", " + s for s in scalars)
    ctes = [
        f"matches AS {materialized}({ids_sql})",
        "page AS (SELECT pk FROM matches ORDER BY pk LIMIT %s OFFSET %s)",
    ]
    # One row even for an empty page (the dummy row of "one"), to carry the scalars.
    select = (
        f"SELECT 0 AS part, {columns}{extra}"
        f" FROM (SELECT 1 AS one) one LEFT JOIN page ON TRUE"
        f" LEFT JOIN {_TABLE} r ON r.id = page.pk"
    )
    included_params: list = []
    if includes:
        ctes.append("shown AS (SELECT pk FROM page ORDER BY pk LIMIT %s)")
        included_sql, included_params = _included_sql(list(includes), base)
        ctes.append(f"included AS ({included_sql})")
        nulls = "".join(", NULL" for _s in scalars)
        select += f" UNION ALL SELECT 1, {columns.replace('r.', 'i.')}{nulls} FROM included i"
    return f"WITH {', '.join(ctes)} {select} ORDER BY 1, 2", tuple(included_params)


def execute(cursor, sql: str, params: list, prepare: bool) -> None:
    """``prepare``: as a statement prepared once per connection (``fhir_api.prepared``, on
    PostgreSQL), for a search whose every subquery reads one patient's index rows (and
    ``$lastn``'s statement, which reads only one patient's rows too).

    Planning the search's statement was a third of its PostgreSQL CPU (patient + code + date
    range at 1M: 0.5 ms of planning for 0.9 ms of execution). A prepared statement can run a
    generic plan, made once, instead. For one patient's rows that plan fits every value: each
    subquery is a range of an index that leads with the patient, whatever the patient, code or
    dates. Over all patients the best plan depends on the values (a code with 167,000 rows or
    with ten), and a generic plan could be far worse for some, so those searches are planned
    each time as before.
    """
    db = cursor.db
    if not prepare or db.vendor != "postgresql":
        cursor.execute(sql, params)
        return
    if settings.DB_PREPARED_STATEMENTS:
        _generic_plans(cursor)
    prepared.execute(cursor, sql, params)


def _generic_plans(cursor) -> None:
    """The session's prepared statements run their generic plan from the first run.

    By default PostgreSQL plans a prepared statement's first five runs for their values and
    then keeps the generic plan only if its estimated cost is no higher. For a patient's search
    with a rare value (heart rate above 120 at 1M rows) the estimate for the values is far
    lower than the generic one, so every run was planned again (0.40 ms of planning for 0.14
    ms of execution), though the generic plan runs it in 0.07 ms. ``plan_cache_mode`` is
    a setting of the session, so it applies to the other statements ``fhir_api.prepared``
    prepares on it too: the creates' inserts, whose plan (rows from UNNEST) is the same
    whatever the values. Set once per connection, outside a transaction (a SET in one that
    rolls back is undone: it is then set again later); a session reset (DISCARD ALL) puts
    the default back, which is only slower.
    """
    db = cursor.db
    raw = db.connection
    if getattr(db, "_dth_generic_plans", None) is raw or db.pg_version < 120000:
        return
    cursor.execute("SET plan_cache_mode = force_generic_plan")
    if db.get_autocommit():
        db._dth_generic_plans = raw


def _fetch_sorted(qs: QuerySet, start: int, stop: int, total: bool, snapshot: bool) -> Fetched:
    count = None
    if total:
        ids_sql, params = _ids(qs)
        count = (f"SELECT COUNT(*) FROM ({ids_sql}) matches", params)
    if stop > start:
        extra = {}
        if count is not None:
            extra[TOTAL] = RawSQL(count[0], count[1])
        if snapshot:
            extra[SNAPSHOT] = RawSQL(_snapshot_sql(), ())
        rows = list(qs.annotate(**extra).only(*PAGE_FIELDS)[start:stop])
        if rows:
            return Fetched(
                rows,
                getattr(rows[0], TOTAL) if total else None,
                getattr(rows[0], SNAPSHOT) if snapshot else None,
            )
        if start == 0 and not snapshot:
            return Fetched([], 0 if total else None, None)
        if start == 0:
            count = ("SELECT 0", []) if total else None
    parts, params = [], []
    if count is not None:
        parts.append(f"({count[0]})")
        params.extend(count[1])
    if snapshot:
        parts.append(f"({_snapshot_sql()})")
    if not parts:
        return Fetched([], None, None)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        values = list(cursor.fetchone())
    found_total = values.pop(0) if count is not None else None
    found_snapshot = values.pop(0) if snapshot else None
    return Fetched([], found_total, found_snapshot)


def followed_includes(request) -> list[Followed] | None:
    """The request's includes as ``Followed``, if the page's statement can follow them all:
    forward ``_include`` without ``:iterate`` from a search of one type in the usual order.
    None: ``include.included`` follows them after the page (``_revinclude``, ``:iterate``,
    ``_sort``, several types)."""
    types = request.resource_types
    if not request.includes or request.sort or len(types) != 1 or types[0] == "*":
        return None
    out = []
    for rule in request.includes:
        if rule.reverse or rule.iterate or rule.source_type not in ("*", types[0]):
            return None
        out.append(Followed(None if rule.param == "*" else rule.param, rule.target_type))
    return out
