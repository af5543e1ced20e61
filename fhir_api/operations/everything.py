"""``Patient/[id]/$everything`` (hl7.org/fhir/R4B/patient-operation-everything.html).

The answer is the Patient, every resource in its Patient compartment
(hl7.org/fhir/R4B/compartmentdefinition-patient.html) and the resources those reference, each
once, in a paged searchset Bundle: the Patient and its compartment as ``search.mode = match``,
the referenced resources (Practitioner, Organization, Medication, Location, …) as ``include``.

- Compartment membership is read from the reference index: a resource is in Patient X's
  compartment when one of the definition's parameters for its type (``Observation.subject``,
  ``Observation.performer``, ``Encounter.patient``, …) references ``Patient/X``. That is one
  scan of the ``(target_type, target_id)`` index, whatever the size of the store.
- Referenced resources are those the matched resources point to through any reference search
  parameter (one level), from the same index.
- ``_since`` keeps resources updated at or after the instant; ``_type`` the listed types;
  ``start``/``end`` the resources whose care date (the type's clinical date parameter, e.g.
  ``Observation.effective``, ``Encounter.period``) overlaps the range; resources of a type
  without a care date, or with none recorded, are kept (the Patient always is).
- Paging: one ordered list (the Patient, its compartment by row, then the referenced resources
  by row), cut by ``_count``; a ``next`` link carries a cursor (the last row given) and the
  newest resource row when the first page was read (``_snapshot``, as the search does), so
  resources added while a client pages neither shift nor repeat entries, and a page costs the
  same wherever it is in the list.
- ``Bundle.total`` counts the matches (the Patient and its compartment), as in a search.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection

from ..exceptions import BadRequest
from ..interactions import Answer, Context
from ..models import DateIndex, ReferenceIndex, Resource
from ..reads import Page, read, searchset_bundle
from ..resource_types import RESOURCE_TYPES
from ..search import registry
from ..search.dates import parse_interval
from ..search.params import check_text, whole_number
from ..search.query import snapshot_now
from ..search.types.reference import own_base

SPEC = "hl7.org/fhir/R4B/patient-operation-everything.html"
PARAMS = ("_since", "_type", "_count", "start", "end", "_snapshot", "_cursor")

# The care date of the compartment types that have no ``date`` parameter, or whose ``date`` is
# not one (MedicationRequest.date is the dosage timing). Types missing here use ``date`` when
# they have it; the others have no care date and are never left out by start/end.
CARE_DATE: dict[str, tuple[str, ...]] = {
    "Account": ("period",),
    "Basic": ("created",),
    "ChargeItem": ("occurrence", "entered-date"),
    "Claim": ("created",),
    "ClaimResponse": ("created",),
    "Communication": ("sent", "received"),
    "CommunicationRequest": ("occurrence", "authored"),
    "Condition": ("onset-date", "recorded-date"),
    "CoverageEligibilityRequest": ("created",),
    "CoverageEligibilityResponse": ("created",),
    "DetectedIssue": ("identified",),
    "DeviceRequest": ("event-date", "authored-on"),
    "DocumentManifest": ("created",),
    "ExplanationOfBenefit": ("created",),
    "Goal": ("start-date", "target-date"),
    "ImagingStudy": ("started",),
    "Media": ("created",),
    "MedicationAdministration": ("effective-time",),
    "MedicationDispense": ("whenhandedover", "whenprepared"),
    "MedicationRequest": ("authoredon",),
    "MedicationStatement": ("effective",),
    "NutritionOrder": ("datetime",),
    "Patient": (),
    "Person": (),
    "RelatedPerson": (),
    "Provenance": ("recorded", "when"),
    "QuestionnaireResponse": ("authored",),
    "RequestGroup": ("authored",),
    "ServiceRequest": ("occurrence", "authored"),
    "Specimen": ("collected",),
    "VisionPrescription": ("datewritten",),
}


@dataclass
class EverythingRequest:
    """The parsed input parameters (patient-operation-everything.html#parameters)."""

    since: str | None = None
    types: tuple[str, ...] | None = None
    start: str | None = None
    end: str | None = None
    count: int = 0
    cursor: str | None = None  # where the page starts: "m<row>" or "i<row>", None at the top
    snapshot: int | None = None
    ignored: list[str] = field(default_factory=list)

    def applied_query(self) -> list[tuple[str, str]]:
        items: list[tuple[str, str]] = []
        if self.since is not None:
            items.append(("_since", self.since))
        if self.types is not None:
            items.append(("_type", ",".join(self.types)))
        if self.start is not None:
            items.append(("start", self.start))
        if self.end is not None:
            items.append(("end", self.end))
        items.append(("_count", str(self.count)))
        return items

    def page_query(self, cursor: str | None) -> str:
        items = self.applied_query()
        if self.snapshot is not None:
            items.append(("_snapshot", str(self.snapshot)))
        if cursor:
            items.append(("_cursor", cursor))
        return urlencode(items)


def _whole(name: str, value: str) -> int:
    return whole_number(name, value)


def parse(items: list[tuple[str, str]], *, strict: bool) -> EverythingRequest:
    """Read the operation's parameters; unknown ones are refused (strict) or ignored."""
    request = EverythingRequest(count=settings.FHIR_DEFAULT_COUNT)
    seen: set[str] = set()
    types: list[str] = []
    for name, value in items:
        check_text(name, value)
        if name not in PARAMS:
            if strict:
                raise BadRequest(
                    f"$everything does not take the parameter '{name}' ({SPEC})",
                    code="not-supported",
                )
            request.ignored.append(name)
            continue
        if name == "_type":  # repeatable, each a comma list
            for part in value.split(","):
                part = part.strip()
                if part not in RESOURCE_TYPES:
                    raise BadRequest(f"_type: '{part}' is not a resource type")
                if part not in types:
                    types.append(part)
            continue
        if name in seen:
            raise BadRequest(f"$everything takes '{name}' at most once")
        seen.add(name)
        if name in ("_since", "start", "end"):
            parse_interval(value)  # BadRequest unless a date/dateTime/instant
            setattr(request, name.lstrip("_"), value)
        elif name == "_count":
            request.count = whole_number(name, value, cap=settings.FHIR_MAX_COUNT)
        elif name == "_cursor":
            if value[:1] not in ("m", "i"):
                raise BadRequest("_cursor must be a cursor from a next link")
            whole_number("_cursor", value[1:])
            request.cursor = value
        else:
            request.snapshot = _whole(name, value)
    if types:
        request.types = tuple(types)
    if (
        request.start
        and request.end
        and parse_interval(request.start).low >= parse_interval(request.end).high
    ):
        raise BadRequest(f"start={request.start} is after end={request.end}")
    return request


# --- the queries ---------------------------------------------------------------------------


def _restrict(types: tuple[str, ...] | None, candidates) -> list[str]:
    return [t for t in candidates if types is None or t in types]


@cache
def _compartment_types() -> tuple[str, ...]:
    return tuple(t for t in sorted(RESOURCE_TYPES) if _membership_params(t))


@cache
def _membership_params(resource_type: str) -> tuple[str, ...]:
    """The compartment definition's parameters for a type that are indexed references."""
    out = []
    for code in registry.compartment_params("Patient", resource_type):
        param = registry.get(resource_type, code)
        if param is not None and param.type == "reference" and param.expression:
            out.append(code)
    return tuple(out)


@cache
def care_date_params(resource_type: str) -> tuple[str, ...]:
    """The date parameters that say when care happened for a type (for ``start``/``end``)."""
    out = []
    for code in CARE_DATE.get(resource_type, ("date",)):
        param = registry.get(resource_type, code)
        if param is not None and param.type == "date" and param.expression:
            out.append(code)
    return tuple(out)


def patient_matches(patient: Resource, request: EverythingRequest) -> bool:
    """Whether the Patient itself is in the answer (``_type`` and ``_since`` apply to it)."""
    since = _since(request)
    return (request.types is None or "Patient" in request.types) and (
        since is None or patient.last_updated >= since
    )


def _since(request: EverythingRequest) -> datetime | None:
    return parse_interval(request.since).low if request.since else None


def _marks(values: list[Any]) -> str:
    return ", ".join(["%s"] * len(values))


class Statements:
    """The SQL of one request, driven from the patient's reference rows.

    ``members`` is the compartment as a set of row ids, read from the reference index by
    ``(target_type, target_id)`` and the compartment parameters of each type (one IN list of
    ``type:param``). On PostgreSQL it is a materialized CTE, and pages are read by walking it in
    row order, so the plan cannot fall back to scanning the resource table: a page costs the
    patient's own rows, whatever the size of the store.
    """

    def __init__(self, patient: Resource, request: EverythingRequest) -> None:
        self.patient = patient
        self.request = request
        self.materialized = "MATERIALIZED" if connection.vendor == "postgresql" else ""
        self.ref = ReferenceIndex._meta.db_table
        self.res = Resource._meta.db_table
        self.date = DateIndex._meta.db_table

    def members(self) -> tuple[str, list[Any]]:
        pairs = [
            f"{t}:{code}"
            for t in _restrict(self.request.types, _compartment_types())
            for code in _membership_params(t)
        ]
        if not pairs:
            return "SELECT NULL AS id WHERE 1 = 0", []
        sql = (
            f"SELECT DISTINCT x.resource_id AS id FROM {self.ref} x"
            " WHERE x.target_type = %s AND x.target_id = %s"
            f" AND (x.resource_type || ':' || x.param) IN ({_marks(pairs)})"
        )
        params: list[Any] = ["Patient", self.patient.logical_id, *pairs]
        base = own_base()
        if base:
            # An absolute reference is ours only under our base: another server's Patient/p1
            # is not this one (as in search, types/reference.local_q).
            sql += " AND (x.url = '' OR substr(x.url, 1, %s) = %s)"
            params += [len(base) + 1, base + "/"]
        return sql, params

    def row_filters(self) -> tuple[str, list[Any]]:
        """Conditions on a resource row ``r``: current, in the snapshot, ``_type``, ``_since``."""
        request = self.request
        conds = ["r.deleted = %s", "r.id <> %s"]
        params: list[Any] = [False, self.patient.pk]
        if request.snapshot is not None:
            conds.append("r.id <= %s")
            params.append(request.snapshot)
        if request.types is not None:
            conds.append(f"r.resource_type IN ({_marks(list(request.types))})")
            params += request.types
        since = _since(request)
        if since is not None:
            conds.append("r.last_updated >= %s")
            params.append(connection.ops.adapt_datetimefield_value(since))
        return " AND ".join(conds), params

    def care_filter(self) -> tuple[str, list[Any]]:
        """``start``/``end``: no care date of the type's, or one overlapping the range."""
        request = self.request
        if request.start is None and request.end is None:
            return "", []
        pairs = [
            f"{t}:{code}"
            for t in _restrict(request.types, _compartment_types())
            for code in care_date_params(t)
        ]
        if not pairs:
            return "", []
        dated = (
            f"SELECT d.resource_id FROM {self.date} d WHERE d.resource_id IN (SELECT id FROM m)"
            f" AND (d.resource_type || ':' || d.param) IN ({_marks(pairs)})"
        )
        overlap, overlap_params = dated, list(pairs)
        if request.start is not None:
            overlap += " AND d.high > %s"
            low = parse_interval(request.start).low
            overlap_params.append(connection.ops.adapt_datetimefield_value(low))
        if request.end is not None:
            overlap += " AND d.low < %s"
            high = parse_interval(request.end).high
            overlap_params.append(connection.ops.adapt_datetimefield_value(high))
        return (
            f" AND (r.id NOT IN ({dated}) OR r.id IN ({overlap}))",
            [*pairs, *overlap_params],
        )

    def matched(self) -> tuple[str, list[Any]]:
        """``WITH m AS (compartment ids), matched AS (returned compartment rows)``."""
        members, members_params = self.members()
        filters, filter_params = self.row_filters()
        care, care_params = self.care_filter()
        sql = (
            f"WITH m AS {self.materialized} ({members}),"
            f" matched AS {self.materialized} (SELECT r.id FROM m JOIN {self.res} r"
            f" ON r.id = m.id WHERE {filters}{care})"
        )
        return sql, [*members_params, *filter_params, *care_params]

    def count(self) -> int:
        sql, params = self.matched()
        return _fetch(f"{sql} SELECT COUNT(*) FROM matched", params)[0][0]

    def compartment_page(self, after: int, limit: int) -> list[Resource]:
        sql, params = self.matched()
        rows = _fetch(
            f"{sql} SELECT r.id, r.resource_type, r.logical_id, r.content"
            f" FROM (SELECT id FROM matched WHERE id > %s ORDER BY id LIMIT %s) g"
            f" JOIN {self.res} r ON r.id = g.id ORDER BY g.id",
            [*params, after, limit],
        )
        return [_resource(row) for row in rows]

    def referenced_page(self, after: int, limit: int, *, with_patient: bool) -> list[Resource]:
        """The rows the Patient (when returned) and the matched compartment reference."""
        sql, params = self.matched()
        filters, filter_params = self.row_filters()
        sources = "SELECT id FROM matched" + (" UNION ALL SELECT %s" if with_patient else "")
        source_params = [self.patient.pk] if with_patient else []
        rows = _fetch(
            f"{sql}, targets AS (SELECT DISTINCT t.id FROM {self.ref} x"
            f" JOIN {self.res} t ON t.resource_type = x.target_type"
            " AND t.logical_id = x.target_id"
            f" WHERE x.resource_id IN ({sources}) AND x.target_id <> ''"
            " AND NOT (x.target_type = %s AND x.target_id = %s))"
            " SELECT r.id, r.resource_type, r.logical_id, r.content"
            f" FROM targets g JOIN {self.res} r ON r.id = g.id"
            f" WHERE g.id > %s AND {filters} AND r.id NOT IN (SELECT id FROM matched)"
            " ORDER BY g.id LIMIT %s",
            [
                *params,
                *source_params,
                "Patient",
                self.patient.logical_id,
                after,
                *filter_params,
                limit,
            ],
        )
        return [_resource(row) for row in rows]


def _fetch(sql: str, params: list[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _resource(row: tuple) -> Resource:
    pk, resource_type, logical_id, content = row
    return Resource(pk=pk, resource_type=resource_type, logical_id=logical_id, content=content)


def everything_page(logical_id: str, request: EverythingRequest) -> Page:
    """One page of the operation's result (patient-operation-everything.html).

    The order is the Patient, its compartment by row, then the referenced resources by row; a
    page continues from the cursor of the previous one (``_cursor=m<row>`` in the compartment,
    ``i<row>`` in the referenced resources), so reading a page costs the same wherever it is.
    """
    patient = read("Patient", logical_id)  # 404 unknown, 410 deleted
    if request.snapshot is None:
        request.snapshot = snapshot_now()
    statements = Statements(patient, request)
    with_patient = patient_matches(patient, request)
    total = statements.count() + with_patient
    count, cursor = request.count, request.cursor
    rows: list[Resource] = []
    included: list[Resource] = []
    following: str | None = None
    if count:
        phase, after = (cursor[0], int(cursor[1:])) if cursor else ("m", 0)
        if cursor is None and with_patient:
            rows.append(patient)
        if phase == "m":
            rows += statements.compartment_page(after, count + 1)
            if len(rows) > count:  # more of the compartment (the Patient is no cursor)
                last = rows[count - 1]
                phase, after = "m", (0 if last is patient else last.pk)
            else:
                phase, after = "i", 0
            rows = rows[:count]
        if phase == "i":
            wanted = count - len(rows)
            found = statements.referenced_page(after, wanted + 1, with_patient=with_patient)
            included = found[:wanted]
            if len(found) > wanted:
                following = f"i{included[-1].pk if included else after}"
        else:
            following = f"m{after}"
    return Page(
        rows,
        total,
        request.page_query(following) if following else None,
        None,
        request.page_query(cursor),
        request.page_query(None),
        included=included,
        ignored=request.ignored,
    )


def everything(ctx: Context, logical_id: str, items: list[tuple[str, str]]) -> Answer:
    """``GET|POST [base]/Patient/[id]/$everything``: a searchset Bundle, one page of it."""
    page = everything_page(logical_id, parse(items, strict=ctx.strict))
    return Answer(200, searchset_bundle(ctx.base, ctx.url, page))
