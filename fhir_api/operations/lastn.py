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

A monitoring screen asks this all day, so it reads one index table, ``fhir_lastn_index``
(``models.LastnIndex``: each code of each Observation with the start of its ``effective[x]``,
written with the other index rows), in one statement (``written_statement``): on PostgreSQL
the patient's codes by a skip scan of its ``(patient, code, system, label, low)`` index, and
for each code its newest rows, read backwards from the same index until ``max`` of them match
(ties kept), with their resources. Its cost follows the patient's codes and ``max``, not the
length of the patient's record. SQLite ranks all the patient's rows with ``rank()``: the same
answer. A Period without a start counts as no effective time.

The ``patient`` column is exact for ``patient=X`` except for an Observation whose subject is not
a Patient and whose performer is Patient X (the compartment puts it in X's rows); the statements
check each kept resource's subject, and if one is not X the ranking runs again with the subject
checked on every row.

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
from ..models import LastnIndex, ReferenceIndex, Resource
from ..reads import Page, searchset_bundle
from ..search import fetch as search_fetch
from ..search import include as search_include
from ..search import query as search_query
from ..search import shapes
from ..search.extract import MIN_DATE, split_reference, token_values
from ..search.fhirpath import Node
from ..search.params import Criterion, split_escaped, whole_number
from ..search.types.base import Ctx, index_rows
from ..search.types.reference import own_base
from ..validation import ID_RE

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


def _code_sql(
    codes: list[tuple[str | None, str | None]], alias: str = "t"
) -> tuple[str, list[Any]]:
    parts, params = [], []
    for system, code in codes:
        if system is None:
            parts.append(f"{alias}.code = %s")
            params.append(code)
        elif code is None:
            parts.append(f"{alias}.system = %s")
            params.append(system)
        else:
            parts.append(f"({alias}.system = %s AND {alias}.code = %s)")
            params.extend([system, code])
    return "(" + " OR ".join(parts) + ")", params


def _tables() -> dict[str, str]:
    return {
        "lastn": LastnIndex._meta.db_table,
        "ref": ReferenceIndex._meta.db_table,
        "res": Resource._meta.db_table,
    }


def _index_subquery(q: Q) -> QuerySet | None:
    """The index-row subquery of a criterion that is just ``pk IN (index rows)``, if it is one."""
    found = index_rows(q)
    return None if found is None else found.queryset().values("resource_id")


def _others_sql(
    others: list[Criterion], patient: str, *, correlated: bool
) -> tuple[str, list[Any]]:
    """The other criteria, ANDed, as conditions on ``t.resource_id``.

    A criterion that is a subquery of index rows (token, date, quantity… in the patient's rows)
    filters the rows directly: ``correlated``, as a lookup of each row's own index rows (for
    the few rows read per code), else as one set (for a whole ranking). The others
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


def _filter(
    request: LastnRequest, patient: str, *, exact: bool, correlated: bool, codes: bool = True
) -> tuple[str, list]:
    """Conditions on ``t``, the patient's ``fhir_lastn_index`` rows that match: the asked
    codes (unless not ``codes``), the other criteria (``correlated``: as a lookup of each
    row's own index rows, for the few rows read per code; else as one set, for a whole
    ranking) and, if ``exact``, the subject (``candidates``)."""
    t = _tables()
    where = ["t.patient = %s"]
    params: list[Any] = [patient]
    if request.codes and codes:
        sql, code_params = _code_sql(request.codes)
        where.append(sql)
        params += code_params
    if request.others:
        sql, other_params = _others_sql(request.others, patient, correlated=correlated)
        where.append(sql)
        params += other_params
    if exact:
        where.append(
            f"EXISTS (SELECT 1 FROM {t['ref']} s WHERE s.resource_id = t.resource_id"
            " AND s.resource_type = %s AND s.param = %s AND s.target_type = %s"
            " AND s.target_id = %s)"
        )
        params += [OBSERVATION, "subject", "Patient", patient]
    return " AND ".join(where), params


def written_statement(request: LastnRequest, patient: str, *, exact: bool) -> tuple[str, list]:
    """The statement that ranks one patient's Observations: per code, those whose effective
    time ranks within the first ``max`` (ties kept, for ``lastUpdated`` to break), each with
    its resource (logical id, content, ``lastUpdated``).

    PostgreSQL: the patient's codes by a skip scan of ``fhir_lastn_patient`` (from each code
    straight to the next, one index probe per code), then for each code its rows from the
    newest, read backwards from the same index until ``max`` of them match the other criteria
    (``FETCH FIRST … WITH TIES``): a few rows per code however many the patient has. SQLite
    (which has neither ``LATERAL`` nor ``WITH TIES``): ``rank()`` over all the patient's rows,
    the same answer.
    """
    t = _tables()
    res = t["res"]
    if connection.vendor != "postgresql":
        where, params = _filter(request, patient, exact=exact, correlated=False)
        sql = f"""
            SELECT k.system, k.code, k.label, k.resource_id, k.low,
                   o.logical_id, o.content, o.last_updated
            FROM (
                SELECT t.resource_id, t.system, t.code, t.label, t.low,
                       RANK() OVER (PARTITION BY t.code, t.system, t.label ORDER BY t.low DESC)
                       AS rn
                FROM {t["lastn"]} t WHERE {where}
            ) k
            JOIN {res} o ON o.id = k.resource_id AND o.deleted = %s
            WHERE k.rn <= %s
        """
        return sql, [*params, False, request.max]
    # The walk reads all the patient's codes and the asked ones are picked from them: with the
    # codes' OR in the walk, PostgreSQL filtered the patient's rows one by one instead of
    # seeking from code to code (6 ms, not 1, for two codes of 10,000 Observations).
    keys, key_params = "t.patient = %s", [patient]
    where, params = _filter(request, patient, exact=exact, correlated=True, codes=False)
    asked, asked_params = _code_sql(request.codes, "k") if request.codes else ("TRUE", [])
    table = t["lastn"]
    key_order = "ORDER BY t.code, t.system, t.label LIMIT 1"
    sql = f"""
        WITH RECURSIVE keys(code, system, label) AS (
            (SELECT t.code, t.system, t.label FROM {table} t WHERE {keys} {key_order})
            UNION ALL
            SELECT n.code, n.system, n.label FROM keys k CROSS JOIN LATERAL (
                SELECT t.code, t.system, t.label FROM {table} t
                WHERE {keys} AND (t.code, t.system, t.label) > (k.code, k.system, k.label)
                {key_order}
            ) n
        )
        SELECT k.system, k.code, k.label, x.resource_id, x.low,
               o.logical_id, o.content, o.last_updated
        FROM (SELECT * FROM keys k WHERE {asked}) k CROSS JOIN LATERAL (
            SELECT t.resource_id, t.low FROM {table} t
            WHERE {where} AND t.code = k.code AND t.system = k.system AND t.label = k.label
            ORDER BY t.low DESC FETCH FIRST (%s) ROWS WITH TIES
        ) x
        JOIN {res} o ON o.id = x.resource_id AND o.deleted = %s
    """
    return sql, [*key_params, *key_params, *asked_params, *params, request.max, False]


# Statements by shape: the same $lastn of another patient (search.shapes).
_shapes: dict[tuple, tuple[str, tuple] | None] = {}
_NOT_WRITTEN: Any = object()


def statement(request: LastnRequest, patient: str, *, exact: bool) -> tuple[str, list[Any]]:
    """``written_statement``, written once per shape of the request and given each patient's
    id where the stand-in stood (as ``search.shapes`` does for a search): writing it cost more
    CPU than PostgreSQL's answer. The codes and other criteria are in the key; chains,
    ``_has`` and ``_list`` among them, long requests and ids other than plain ids are written
    each time."""
    key = _shape_key(request, exact)
    if key is None or not ID_RE.fullmatch(patient):
        return written_statement(request, patient, exact=exact)
    kept = _shapes.get(key, _NOT_WRITTEN)
    if kept is _NOT_WRITTEN:
        sql, params = written_statement(request, shapes.STAND_IN, exact=exact)
        kept_params = shapes.template(params)
        kept = None if kept_params is None else (sql, kept_params)
        if len(_shapes) >= shapes.SHAPES:
            _shapes.clear()
        _shapes[key] = kept
    if kept is None:
        return written_statement(request, patient, exact=exact)
    sql, params = kept
    return sql, shapes.given(params, patient)


def _shape_key(request: LastnRequest, exact: bool) -> tuple | None:
    others = []
    size = 0
    for name, value, criterion in request.search.criteria:
        if not any(criterion is o for o in request.others):
            continue
        if not shapes.keepable(criterion):
            return None
        others.append((name, value))
        size += len(name) + len(value)
    codes = tuple(request.codes) if request.codes is not None else None
    size += sum(len(s or "") + len(c or "") for s, c in codes or ())
    if size > shapes.MAX_KEY_TEXT or shapes.STAND_IN in repr((others, codes)):
        return None
    return (connection.vendor, own_base(), request.max, codes, tuple(others), exact)


def _rows(sql: str, params: list[Any], *, prepare: bool = False) -> list[tuple]:
    with connection.cursor() as cursor:
        search_fetch.execute(cursor, sql, params, prepare)
        return cursor.fetchall()


def ranked(request: LastnRequest, patient: str, *, exact: bool) -> dict[int, Candidate]:
    """Per code, the Observations that can be among its ``max`` most recent (ties included),
    with their resources, in one statement (``statement``)."""
    # Every read of it is a range of an index that leads with the patient: prepared once per
    # connection, its generic plan fits every patient, and planning it cost PostgreSQL as much
    # CPU as running it.
    found: dict[int, Candidate] = {}
    for system, code, label, pk, low, logical_id, content, last_updated in _rows(
        *statement(request, patient, exact=exact), prepare=True
    ):
        c = found.get(pk)
        if c is None:
            when = _instant(low)
            c = found[pk] = Candidate(
                pk,
                set(),
                None if when == MIN_DATE else when,  # the index's "no effective time"
                _instant(last_updated),
                logical_id,
                content,
            )
        c.keys.add((system, code, label))
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


def _codings(data: Any) -> set[tuple[str, str, str]]:
    """The grouping keys of every coding of an Observation, as the index writes them
    (``extract.token_values``, ``extract.add_lastn_rows``).

    A coding with a code is ``(system, code, "")``, read straight from the JSON: working out
    ``token_values`` (each display normalised for ``:text``, which a key does not hold) cost
    a quarter of the operation's CPU. Any other concept (a coding without a code, a text-only
    concept, something malformed) goes through ``token_values`` itself."""
    concept = data.get("code") if isinstance(data, dict) else None
    if not isinstance(concept, dict):
        return set()
    codings = concept.get("coding")
    if isinstance(codings, list) and codings:
        keys = set()
        for coding in codings:
            if not isinstance(coding, dict):
                break
            system, code = coding.get("system"), coding.get("code")
            if type(code) is not str or not code or not (system is None or type(system) is str):
                break
            keys.add(((system or "")[:255], code[:255], ""))
        else:
            return keys
    return {(s, c, (text or "") if c == "" else "") for s, c, text in token_values(Node(concept))}


def _subject_is(data: Any, patient: str) -> bool:
    """The Observation's subject is ``Patient/[patient]`` (as the reference index reads it)."""
    subject = data.get("subject") if isinstance(data, dict) else None
    reference = subject.get("reference") if isinstance(subject, dict) else None
    return isinstance(reference, str) and split_reference(reference) == ("Patient", patient)


def candidates(request: LastnRequest, patient: str) -> list[Candidate]:
    """The ranked Observations of one patient, with their resources and all their codes.

    The ranking reads the ``patient`` column of the index rows, which also holds Observations
    about someone else that the patient performed; when one of those is kept, the ranking runs
    again with each row's subject checked."""
    found: dict[int, Candidate] = {}
    data: dict[int, Any] = {}
    for exact in (False, True):
        found = ranked(request, patient, exact=exact)
        data = {pk: json_io.loads(c.content) for pk, c in found.items()}
        if exact or all(_subject_is(d, patient) for d in data.values()):
            break
    for c in found.values():
        # Codings the filter or the ranking left out still tie their groups together.
        c.keys |= _codings(data[c.pk])
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
    rows: list[search_fetch.PageRow] = []
    for patient in request.patients:
        for members in group(candidates(request, patient), request.max):
            rows.extend(
                search_fetch.PageRow(c.pk, OBSERVATION, c.logical_id, c.content) for c in members
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
