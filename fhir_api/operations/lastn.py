"""``Observation/$lastn`` (hl7.org/fhir/R4B/observation-operation-lastn.html).

The most recent ``max`` Observations (default 1) of each code, for a patient, in a searchset
Bundle grouped by code:

- Codes are equal when their ``system`` and ``code`` are; a text-only code is grouped by its
  text; codings of one Observation are the same code, transitively (A = X, B = Y, C = X and Y:
  A, B and C are one group).
- "Most recent" is by ``effective[x]``, the instant it starts (a dateTime or instant is its
  own start, a Period its start; the latest, for a Timing of several), then by
  ``meta.lastUpdated``; Observations without an effective time come after those with one.
- ``patient`` or ``subject`` (a Patient, one or several OR-ed, or a chain such as
  ``patient.identifier=…``) is required; ``code`` and ``category`` and any other Observation
  search parameter are ANDed as in a search (``fhir_api.search.query``), and the status is not
  filtered unless asked (entered-in-error included, as the specification says).

A monitoring screen asks this all day, so it reads the index tables only, from the indexes that
lead with the ``patient`` column, and mostly the patient's recent rows (see ``ranked``):

1. the patient's codes: one range of the token index;
2. the recent window: the patient's few most recent date rows (a few times codes × ``max``),
   each joined with its codes; a code with ``max`` Observations there is settled, since all
   its others are older. Monitored codes are measured often, so they are settled here;
3. the codes left (seldom measured, or without times) are ranked exactly: their token rows
   joined with their date rows, a hash aggregate for ``max`` 1, else ``rank() over (partition
   by system, code … order by low desc)``. Plain SQL, PostgreSQL and SQLite (3.25+) alike;
4. the kept Observations' rows by primary key (content, ``lastUpdated``, subject check).

The ``patient`` column is exact for ``patient=X`` except for an Observation whose subject is not
a Patient and whose performer is Patient X (the compartment puts it in X's rows); step 4 finds
those and the ranking runs again with the subject checked on every row.

Codings of one Observation tie groups together when that Observation is among the kept ones (the
usual case: its codings are read from its content); two codes linked only through Observations
older than the ``max`` latest of each stay separate groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from .. import json_io
from ..exceptions import BadRequest
from ..interactions import Answer, Context
from ..models import INDEX_MODELS, DateIndex, ReferenceIndex, Resource, TokenIndex
from ..reads import Page, searchset_bundle
from ..search import include as search_include
from ..search import query as search_query
from ..search.extract import split_reference, token_values
from ..search.fhirpath import Node
from ..search.params import Criterion, split_escaped, whole_number
from ..search.types.base import Ctx

SPEC = "hl7.org/fhir/R4B/observation-operation-lastn.html"
OBSERVATION = "Observation"
# Result parameters of a search that have no meaning here: the operation decides order and size.
NOT_APPLICABLE = {"_count", "_sort", "_offset", "_snapshot", "_total"}
MAX_PATIENTS = 100
MIN = datetime(1, 1, 1, tzinfo=UTC)


@dataclass
class LastnRequest:
    max: int
    patients: list[str]
    codes: list[tuple[str | None, str | None]] | None  # (system, code) OR-ed; None = any
    others: list[Criterion]
    search: search_query.SearchRequest


@dataclass
class Candidate:
    """One Observation the ranking kept, with the codes it is grouped by."""

    pk: int
    keys: set[tuple[str, str, str]]  # (system, code, text of a text-only code)
    when: datetime | None  # start of effective[x] (the latest, if several)
    last_updated: datetime | None = None
    logical_id: str = ""
    content: str = ""


def _positive(value: str) -> int:
    number = whole_number("max", value, 1, cap=settings.FHIR_MAX_COUNT + 1)
    if number > settings.FHIR_MAX_COUNT:
        raise BadRequest(
            f"max={value[:40]} is more than {settings.FHIR_MAX_COUNT}", code="too-costly"
        )
    return number


def _patient_ids(criterion: Criterion) -> list[str]:
    """The Patient ids a ``patient``/``subject`` criterion names (OR-ed)."""
    if criterion.chain is not None:
        # patient.identifier=…: the Patients that match, then the fast path for each.
        if criterion.target_type not in (None, "Patient"):
            raise BadRequest(f"$lastn needs Patient subjects ({criterion.raw_name})")
        inner = search_query.criterion_q(Ctx(("Patient",)), criterion.chain)
        found = Resource.objects.filter(resource_type="Patient", deleted=False).filter(inner)
        return list(found.values_list("logical_id", flat=True)[: MAX_PATIENTS + 1])
    if criterion.modifier:
        raise BadRequest(
            f"$lastn takes {criterion.code} as [id], Patient/[id] or a chain, not"
            f" :{criterion.modifier} ({SPEC})",
            code="not-supported",
        )
    ids = []
    for value in criterion.values:
        parts = split_reference(value) if "/" in value else ("Patient", value)
        kind = criterion.target_type or (parts[0] if parts else None)
        if parts is None or kind != "Patient" or parts[0] != "Patient" or not parts[1]:
            raise BadRequest(
                f"$lastn is answered for Patient subjects: '{value}' is not one",
                code="not-supported",
            )
        ids.append(parts[1])
    return ids


def _codes(criterion: Criterion) -> list[tuple[str | None, str | None]]:
    out: list[tuple[str | None, str | None]] = []
    for value in criterion.values:
        system, code = split_escaped(value, "|")
        if code is None:
            out.append((None, value))
        elif system == "" and code == "":
            raise BadRequest("A token needs a code or a system: [system]|[code]")
        else:
            out.append((system, code or None))
    return out


def parse(items: list[tuple[str, str]], *, strict: bool) -> LastnRequest:
    """Split the input into ``max``, the patients, the codes and the other criteria."""
    maximum: int | None = None
    rest: list[tuple[str, str]] = []
    ignored: list[str] = []
    for name, value in items:
        if name == "max":
            if maximum is not None:
                raise BadRequest("$lastn takes max at most once")
            maximum = _positive(value)
        elif name in NOT_APPLICABLE:
            if strict:
                raise BadRequest(f"$lastn does not take {name} ({SPEC})", code="not-supported")
            ignored.append(name)
        else:
            rest.append((name, value))
    search = search_query.parse(OBSERVATION, rest, strict=strict)
    search.ignored[:0] = ignored
    patients: set[str] | None = None
    codes: list[tuple[str | None, str | None]] | None = None
    others: list[Criterion] = []
    for _name, _value, criterion in search.criteria:
        if criterion.code in ("patient", "subject") and criterion.modifier != "missing":
            ids = set(_patient_ids(criterion))
            patients = ids if patients is None else patients & ids
        elif (
            criterion.code == "code"
            and not criterion.modifier
            and codes is None
            and criterion.values
        ):
            codes = _codes(criterion)
        else:
            others.append(criterion)
    if patients is None:
        raise BadRequest(
            f"$lastn needs the patient: give patient=[id] or subject=Patient/[id] ({SPEC})",
            code="required",
        )
    if len(patients) > MAX_PATIENTS:
        raise BadRequest(
            f"$lastn is answered for {MAX_PATIENTS} patients at most", code="too-costly"
        )
    return LastnRequest(maximum or 1, sorted(patients), codes, others, search)


# --- the statement -------------------------------------------------------------------------


def _code_sql(codes: list[tuple[str | None, str | None]]) -> tuple[str, list[Any]]:
    parts, params = [], []
    for system, code in codes:
        if system is None:
            parts.append("t.code = %s")
            params.append(code)
        elif code is None:
            parts.append("t.system = %s")
            params.append(system)
        else:
            parts.append("(t.system = %s AND t.code = %s)")
            params.extend([system, code])
    return "(" + " OR ".join(parts) + ")", params


def _tables() -> dict[str, str]:
    return {
        "tok": TokenIndex._meta.db_table,
        "date": DateIndex._meta.db_table,
        "ref": ReferenceIndex._meta.db_table,
        "res": Resource._meta.db_table,
    }


def _index_subquery(q: Q) -> QuerySet | None:
    """The index-row subquery of a criterion that is just ``pk IN (index rows)``, if it is one."""
    if q.negated or len(q.children) != 1 or not isinstance(q.children[0], tuple):
        return None
    lookup, value = q.children[0]
    if lookup == "pk__in" and isinstance(value, QuerySet) and value.model in INDEX_MODELS:
        return value
    return None


def _others_sql(
    others: list[Criterion], patient: str, *, correlated: bool
) -> tuple[str, list[Any]]:
    """The other criteria, ANDed, as conditions on ``t.resource_id``.

    A criterion that is a subquery of index rows (token, date, quantity… in the patient's rows)
    filters the rows directly: ``correlated``, as a lookup of each row's own index rows (for
    the few rows of the recent window), else as one set (for a whole ranking). The others
    (``:not``, ``:missing``, ``_id``, chains…) go through the resource table, as in a search.
    """
    ctx = Ctx((OBSERVATION,), patient)
    parts: list[str] = []
    params: list[Any] = []
    general = Resource.objects.filter(resource_type=OBSERVATION, deleted=False)
    needs_general = False
    for criterion in others:
        q = search_query.criterion_q(ctx, criterion)
        rows = _index_subquery(q)
        if rows is None:
            general = general.filter(q)
            needs_general = True
            continue
        if correlated:
            table = rows.model._meta.db_table
            rows = rows.extra(where=[f'"{table}"."resource_id" = t.resource_id'])
        sql, rows_params = rows.order_by().query.sql_with_params()
        parts.append(f"t.resource_id IN ({sql})")
        params += list(rows_params)
    if needs_general:
        if correlated:
            general = general.extra(where=['"fhir_resource"."id" = t.resource_id'])
        sql, general_params = general.order_by().values("pk").query.sql_with_params()
        parts.append(f"t.resource_id IN ({sql})")
        params += list(general_params)
    return " AND ".join(parts), params


LABEL = "CASE WHEN t.code = '' THEN COALESCE(t.text, '') ELSE '' END"
Key = tuple[str, str, str]  # (system, code, text of a text-only code)
# At most this many codes are named one by one in the exact ranking; beyond, it ranks them all.
MAX_NAMED_KEYS = 100


def _token_filter(
    request: LastnRequest,
    patient: str,
    *,
    exact: bool,
    keys: list[Key] | None = None,
    others: str = "set",
) -> tuple[str, list[Any]]:
    """Conditions on ``t``, the ``code`` token rows of the patient's Observations that match
    (``others``: the other criteria as a "set", "correlated" per row, or "none")."""
    t = _tables()
    where = ["t.patient = %s", "t.resource_type = %s", "t.param = %s"]
    params: list[Any] = [patient, OBSERVATION, "code"]
    if request.codes:
        sql, code_params = _code_sql(request.codes)
        where.append(sql)
        params += code_params
    if request.others and others != "none":
        sql, other_params = _others_sql(request.others, patient, correlated=others == "correlated")
        where.append(sql)
        params += other_params
    if exact:
        where.append(
            f"EXISTS (SELECT 1 FROM {t['ref']} s WHERE s.resource_id = t.resource_id"
            " AND s.resource_type = %s AND s.param = %s AND s.target_type = %s"
            " AND s.target_id = %s)"
        )
        params += [OBSERVATION, "subject", "Patient", patient]
    if keys is not None:
        where.append(
            "("
            + " OR ".join([f"(t.system = %s AND t.code = %s AND {LABEL} = %s)"] * len(keys))
            + ")"
        )
        params += [part for key in keys for part in key]
    return " AND ".join(where), params


def _dates_where(alias: str) -> str:
    return (
        f"{alias}.patient = %s AND {alias}.resource_type = 'Observation' AND {alias}.param = 'date'"
    )


def keys_statement(request: LastnRequest, patient: str, *, exact: bool) -> tuple[str, list[Any]]:
    """The codes of the patient's Observations (of the asked codes): one range of the token
    index. The other criteria are left out: a code none of whose Observations match them is
    simply not settled by the window, and its exact ranking finds nothing."""
    t = _tables()
    where, params = _token_filter(request, patient, exact=exact, others="none")
    sql = f"""
        SELECT t.system, t.code, {LABEL} FROM {t["tok"]} t WHERE {where}
        GROUP BY t.system, t.code, {LABEL}
    """
    return sql, params


def edge_statement(patient: str, window: int) -> tuple[str, list[Any]]:
    """Where the patient's ``window`` most recent date rows begin (none when it has fewer):
    a few entries of the date index, read backwards."""
    t = _tables()
    sql = f"""
        SELECT d.low FROM {t["date"]} d WHERE {_dates_where("d")}
        ORDER BY d.low DESC LIMIT 1 OFFSET %s
    """
    return sql, [patient, window - 1]


def window_statement(
    request: LastnRequest, patient: str, *, exact: bool, since: Any
) -> tuple[str, list[Any]]:
    """The matching Observations whose effective time starts at or after ``since`` (every dated
    one when None), with their codes: a range of the date index, each row's codes looked up.

    ``since`` is a value, not a subquery, so that the planner sees how few rows it selects."""
    t = _tables()
    where, params = _token_filter(request, patient, exact=exact, others="correlated")
    bound = "" if since is None else " AND d.low >= %s"
    sql = f"""
        SELECT t.resource_id, t.system, t.code, {LABEL}, d.low
        FROM {t["date"]} d JOIN {t["tok"]} t ON t.resource_id = d.resource_id
        WHERE {_dates_where("d")}{bound} AND {where}
    """
    return sql, [patient, *([] if since is None else [since]), *params]


def statement(
    request: LastnRequest, patient: str, *, exact: bool, keys: list[Key] | None = None
) -> tuple[str, list[Any]]:
    """The exact ranking for one patient (of the given codes, or all): per code, the
    Observations whose effective time ranks within the first ``max``, ties kept for
    ``lastUpdated`` to break, those without an effective time last.

    The patient's ``code`` token rows joined with its ``date`` rows; for ``max`` 1 each code's
    latest time is a hash aggregate, for more a ``rank()`` window over each code. It reads all
    the rows of the codes it ranks, so it runs for the codes the recent window did not settle.
    """
    t = _tables()
    where, params = _token_filter(request, patient, exact=exact, keys=keys)
    # The patient's effective times, read once and hashed: on PostgreSQL a materialized CTE,
    # so that a row estimate gone wrong cannot turn the join into one index probe per row.
    materialized = "MATERIALIZED" if connection.vendor == "postgresql" else ""
    dates = f"""
        effective AS {materialized} (
            SELECT d.resource_id, MAX(d.low) AS low FROM {t["date"]} d
            WHERE {_dates_where("d")} GROUP BY d.resource_id
        ),
        obs AS (
            SELECT t.resource_id, t.system, t.code, {LABEL} AS label, e.low
            FROM {t["tok"]} t LEFT JOIN effective e ON e.resource_id = t.resource_id
            WHERE {where}
        )
    """
    params = [patient, *params]
    if request.max == 1:
        sql = f"""
            WITH {dates},
            latest AS (
                SELECT system, code, label, MAX(low) AS low FROM obs
                GROUP BY system, code, label
            )
            SELECT o.resource_id, o.system, o.code, o.label, o.low
            FROM obs o
            JOIN latest l ON l.system = o.system AND l.code = o.code AND l.label = o.label
            WHERE o.low = l.low OR (l.low IS NULL AND o.low IS NULL)
        """
    else:
        sql = f"""
            WITH {dates},
            ranked AS (
                SELECT resource_id, system, code, label, low,
                       RANK() OVER (
                           PARTITION BY system, code, label
                           ORDER BY CASE WHEN low IS NULL THEN 1 ELSE 0 END, low DESC
                       ) AS rn
                FROM obs
            )
            SELECT resource_id, system, code, label, low FROM ranked WHERE rn <= %s
        """
        params.append(request.max)
    return sql, params


def _rows(sql: str, params: list[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def ranked(request: LastnRequest, patient: str, *, exact: bool) -> dict[int, Candidate]:
    """Per code, the Observations that can be among its ``max`` most recent (ties included).

    1. the codes of the patient's Observations (one range of the token index);
    2. the matching Observations among the patient's ``window`` most recent date rows, a few
       times codes × ``max`` (where that window begins, then that range of the date index): a
       code with ``max`` of them there is settled, as everything else of it is older;
    3. the exact ranking (``statement``) for the codes left, which are those seldom measured
       lately, so it reads few rows (and it is where Observations without a time come from).
    """
    codes = _rows(*keys_statement(request, patient, exact=exact))
    if not codes:
        return {}
    window = max(64, 4 * len(codes) * request.max)
    edge = _rows(*edge_statement(patient, window))
    since = edge[0][0] if edge else None
    recent: dict[Key, dict[int, datetime | None]] = {}
    for pk, system, code, label, low in _rows(
        *window_statement(request, patient, exact=exact, since=since)
    ):
        when = _instant(low)
        seen = recent.setdefault((system, code, label), {})
        if pk not in seen or (when and (seen[pk] is None or when > seen[pk])):  # latest time
            seen[pk] = when
    found: dict[int, Candidate] = {}

    def keep(pk: int, key: Key, when: datetime | None) -> None:
        found.setdefault(pk, Candidate(pk, set(), when)).keys.add(key)

    left: list[Key] = []
    for system, code, label in codes:
        key = (system, code, label)
        times = sorted(recent.get(key, {}).items(), key=lambda item: item[1] or MIN, reverse=True)
        if len(times) < request.max:
            left.append(key)
            continue
        cut = times[request.max - 1][1]
        for pk, when in times:
            if when is not None and cut is not None and when < cut:
                break
            keep(pk, key, when)
    if left:
        keys = left if len(left) <= MAX_NAMED_KEYS else None
        wanted = set(left)
        for pk, system, code, label, low in _rows(
            *statement(request, patient, exact=exact, keys=keys)
        ):
            if (system, code, label) in wanted:
                keep(pk, (system, code, label), _instant(low))
    return found


def _instant(value: Any) -> datetime | None:
    """A timestamp as the database returns it (SQLite: text in UTC), as an aware datetime."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = parse_datetime(str(value))
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _fetch(found: dict[int, Candidate], patient: str) -> bool:
    """Read the candidates' resources; False if one's subject is not ``Patient/[patient]``."""
    t = _tables()
    marks = ", ".join(["%s"] * len(found))
    sql = f"""
        SELECT r.id, r.logical_id, r.content, r.last_updated,
               EXISTS (SELECT 1 FROM {t["ref"]} s WHERE s.resource_id = r.id
                       AND s.resource_type = %s AND s.param = %s AND s.target_type = %s
                       AND s.target_id = %s)
        FROM {t["res"]} r WHERE r.id IN ({marks}) AND r.deleted = %s
    """
    params = [OBSERVATION, "subject", "Patient", patient, *found, False]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    read = set()
    for pk, logical_id, content, last_updated, subject_ok in rows:
        if not subject_ok:
            return False
        c = found[pk]
        c.logical_id, c.content, c.last_updated = logical_id, content, _instant(last_updated)
        read.add(pk)
    for pk in set(found) - read:  # deleted meanwhile
        del found[pk]
    return True


def _codings(content: str) -> set[tuple[str, str, str]]:
    """The grouping keys of every coding of an Observation, as the index writes them."""
    data = json_io.loads(content)
    concept = data.get("code") if isinstance(data, dict) else None
    if not isinstance(concept, dict):
        return set()
    return {(s, c, (text or "") if c == "" else "") for s, c, text in token_values(Node(concept))}


def candidates(request: LastnRequest, patient: str) -> list[Candidate]:
    """The ranked Observations of one patient, with their resources and all their codes."""
    found: dict[int, Candidate] = {}
    for exact in (False, True):
        found = ranked(request, patient, exact=exact)
        if not found or _fetch(found, patient):
            break
    for c in found.values():
        # Codings the filter or the ranking left out still tie their groups together.
        c.keys |= _codings(c.content)
    return list(found.values())


def group(found: list[Candidate], maximum: int) -> list[list[Candidate]]:
    """Group by code, transitively over each Observation's codings (A = X, B = Y, C = X and Y:
    one group); in each, the ``maximum`` most recent by effective time, then ``lastUpdated``.
    Groups come in the order of their codes."""
    parent: dict[tuple[str, str, str], tuple[str, str, str]] = {}

    def root(key: tuple[str, str, str]) -> tuple[str, str, str]:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for c in found:
        first, *others = sorted(c.keys)
        for key in others:
            a, b = root(first), root(key)
            if a != b:
                parent[max(a, b)] = min(a, b)
        root(first)
    groups: dict[tuple[str, str, str], list[Candidate]] = {}
    for c in found:
        groups.setdefault(root(min(c.keys)), []).append(c)
    out = []
    for key in sorted(groups):
        members = sorted(
            groups[key],
            key=lambda c: (c.when is not None, c.when or MIN, c.last_updated or MIN, c.pk),
            reverse=True,
        )
        out.append(members[:maximum])
    return out


def lastn_page(request: LastnRequest) -> Page:
    """The Observations of each group, most recent first, for each patient in turn."""
    rows: list[Resource] = []
    for patient in request.patients:
        for members in group(candidates(request, patient), request.max):
            rows.extend(
                Resource(
                    pk=c.pk, resource_type=OBSERVATION, logical_id=c.logical_id, content=c.content
                )
                for c in members
            )
    search = request.search
    applied = [item for item in search.applied_query() if item[0] != "_count"]
    query = urlencode([*applied, ("max", str(request.max))])
    return Page(
        rows,
        len(rows),
        None,
        None,
        query,
        query,
        included=search_include.included(search.includes, rows) if search.includes else [],
        summary=search.summary,
        elements=search.elements,
        ignored=search.ignored,
    )


def lastn(ctx: Context, items: list[tuple[str, str]]) -> Answer:
    """``GET|POST [base]/Observation/$lastn``: a searchset Bundle grouped by code."""
    page = lastn_page(parse(items, strict=ctx.strict))
    return Answer(200, searchset_bundle(ctx.base, ctx.url, page))
