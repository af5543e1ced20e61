"""Turning FHIR search parameters into a query over the store (hl7.org/fhir/R4B/search.html).

Every parameter of the R4B registry that has an index is searchable, with the modifiers,
prefixes, chains and ``_has`` of ``params``/``types``. Unknown parameters are refused under
``Prefer: handling=strict`` and ignored under lenient (the default), and the ``self`` link shows
only what was applied; conditional interactions are always strict, because ignoring part of a
condition would match resources the client did not mean.

A search scoped to one patient (``patient=…`` or ``subject=Patient/…``) passes the patient to
every index subquery, which then scans only that patient's rows (see ``models.IndexRow``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from urllib.parse import parse_qsl, quote_plus

from django.conf import settings
from django.db import connection
from django.db.models import Expression, F, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Collate

from ..exceptions import BadRequest
from ..models import Resource
from . import index_sql, registry
from .params import (
    MAX_CRITERIA,
    Criterion,
    UnknownParameter,
    check_text,
    parse_criterion,
    whole_number,
)
from .types import composite, date, number, quantity, reference, string, token, uri
from .types.base import MODEL_BY_TYPE, Ctx, param_q

# Parameters that shape the result rather than select resources (search.html#return).
RESULT_PARAMS = {
    "_count",
    "_sort",
    "_total",
    "_summary",
    "_elements",
    "_include",
    "_revinclude",
    "_format",
    "_pretty",
    "_offset",
    "_snapshot",
    "_contained",
    "_containedType",
}
MATCHERS = {
    "token": token.match,
    "string": string.match,
    "date": date.match,
    "quantity": quantity.match,
    "number": number.match,
    "uri": uri.match,
    "composite": composite.match,
}
# _include and _revinclude one search may follow (distinct ones: a repeat is dropped).
MAX_INCLUDES = 50
SORT_COLUMN = {
    "token": "code",
    "string": "value",
    "quantity": "value",
    "number": "value",
    "reference": "target_id",
    "uri": "value",
}


@dataclass
class Include:
    """One ``_include``/``_revinclude`` (search.html#include)."""

    source_type: str
    param: str  # "*" for every reference parameter of source_type
    target_type: str | None
    iterate: bool
    reverse: bool
    raw: str  # the value as given, for the Bundle's links

    def as_param(self) -> tuple[str, str]:
        name = "_revinclude" if self.reverse else "_include"
        return (name + ":iterate" if self.iterate else name), self.raw


@dataclass
class SearchRequest:
    resource_types: tuple[str, ...]
    criteria: list[tuple[str, str, Criterion]] = field(default_factory=list)  # (name, value, c)
    ignored: list[str] = field(default_factory=list)
    count: int = 0
    offset: int = 0
    snapshot: int | None = None
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (param, descending)
    total: str = "accurate"
    summary: str | None = None
    elements: list[str] = field(default_factory=list)
    includes: list[Include] = field(default_factory=list)
    system: bool = False  # GET [base]?_type=…: the links must say which types

    @property
    def resource_type(self) -> str:
        return self.resource_types[0]

    def applied_query(self) -> list[tuple[str, str]]:
        """The parameters actually applied, for the Bundle's links."""
        items = [(name, value) for name, value, _c in self.criteria]
        if self.system and self.resource_types != ("*",):
            items.insert(0, ("_type", ",".join(self.resource_types)))
        if self.sort:
            items.append(("_sort", ",".join(("-" if d else "") + p for p, d in self.sort)))
        if self.summary:
            items.append(("_summary", self.summary))
        if self.elements:
            items.append(("_elements", ",".join(self.elements)))
        if self.total != "accurate":
            items.append(("_total", self.total))
        items.extend(i.as_param() for i in self.includes)
        items.append(("_count", str(self.count)))
        return items


def parse_query_string(query: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    except ValueError as exc:
        raise BadRequest(f"The query string cannot be read: {exc}") from None


def _refuse_or_ignore(what: str, strict: bool, ignored: list[str], why: str = "") -> None:
    if strict:
        raise BadRequest(
            why or f"The search parameter '{what}' is not supported", code="not-supported"
        )
    ignored.append(what)


def parse(
    resource_type: str | tuple[str, ...], items: list[tuple[str, str]], *, strict: bool
) -> SearchRequest:
    """A type-level search when ``resource_type`` is a type, a system-level one when it is a
    tuple of types (``("*",)``: every type)."""
    types = (resource_type,) if isinstance(resource_type, str) else tuple(resource_type)
    system = not isinstance(resource_type, str)
    request = SearchRequest(types, count=settings.FHIR_DEFAULT_COUNT, system=system)
    for raw_name, value in items:
        check_text(raw_name, value)
        name, _, modifier = raw_name.partition(":")
        if name in RESULT_PARAMS:
            _result_param(request, name, modifier, value, strict)
            continue
        if value == "":
            continue
        try:
            criterion = _criterion(types[0], raw_name, value)
            for other in types[1:]:
                _criterion(other, raw_name, value)
        except UnknownParameter as exc:
            _refuse_or_ignore(raw_name, strict, request.ignored, exc.diagnostics)
            continue
        request.criteria.append((raw_name, value, criterion))
    if len(request.criteria) > MAX_CRITERIA:
        raise BadRequest(
            f"{len(request.criteria)} search criteria: at most {MAX_CRITERIA} are AND-ed",
            code="too-costly",
        )
    return request


# A monitoring client asks the same parameters all day: each (type, name, value) is parsed once.
# One Criterion then serves every search that gives it, which is safe because nothing changes
# a Criterion after parse_criterion made it (a parse that fails raises, and is not kept). Only
# short parameters are kept, so the cache stays small whatever clients send.
_criterion_kept = lru_cache(maxsize=4096)(parse_criterion)


def _criterion(resource_type: str, name: str, value: str) -> Criterion:
    if len(name) + len(value) <= 256:
        return _criterion_kept(resource_type, name, value)
    return parse_criterion(resource_type, name, value)


def _result_param(
    request: SearchRequest, name: str, modifier: str, value: str, strict: bool
) -> None:
    if name == "_count":
        request.count = whole_number("_count", value, cap=settings.FHIR_MAX_COUNT)
    elif name == "_offset":
        request.offset = whole_number("_offset", value)
    elif name == "_snapshot":
        request.snapshot = whole_number("_snapshot", value)
    elif name == "_sort":
        request.sort = _parse_sort(request, value, strict)
    elif name == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise BadRequest("_total must be none, estimate or accurate")
        request.total = value
    elif name == "_summary":
        if value not in ("true", "false", "count", "data", "text"):
            raise BadRequest("_summary must be true, false, count, data or text")
        request.summary = None if value == "false" else value
    elif name == "_elements":
        request.elements = [e.strip() for e in value.split(",") if e.strip()]
    elif name in ("_include", "_revinclude"):
        if modifier not in ("", "iterate", "recurse"):
            raise BadRequest(f"{name}:{modifier} is not a valid modifier (use :iterate)")
        include = _parse_include(request, name, modifier != "", value)
        if include not in request.includes:  # a repeat adds nothing
            request.includes.append(include)
        if len(request.includes) > MAX_INCLUDES:
            raise BadRequest(
                f"More than {MAX_INCLUDES} _include and _revinclude", code="too-costly"
            )
    else:  # _contained, _containedType
        _refuse_or_ignore(name, strict, request.ignored)


def _parse_include(request: SearchRequest, name: str, iterate: bool, value: str) -> Include:
    reverse = name == "_revinclude"
    if value == "*":
        return Include("*", "*", None, iterate, reverse, value)
    parts = value.split(":")
    if len(parts) not in (2, 3):
        raise BadRequest(f"{name}={value}: use [type]:[parameter] or [type]:[parameter]:[target]")
    source, param, target = parts[0], parts[1], parts[2] if len(parts) == 3 else None
    if param != "*":
        definition = registry.get(source, param)
        if definition is None or definition.type != "reference":
            raise BadRequest(f"{name}={value}: {param} is not a reference parameter of {source}")
    searched = request.resource_types
    if not iterate and not reverse and source not in searched and searched != ("*",):
        raise BadRequest(
            f"{name}={value}: the source type must be a type being searched (or use :iterate)"
        )
    return Include(source, param, target, iterate, reverse, value)


def _parse_sort(request: SearchRequest, value: str, strict: bool) -> list[tuple[str, bool]]:
    keys = []
    for part in value.split(","):
        part = part.strip()  # "date, -code": the space is not part of the name
        descending = part.startswith("-")
        name = part[1:] if descending else part
        if not name:
            continue
        if any(name == seen for seen, _d in keys):
            continue  # a key sorts nothing after its first use
        if name in ("_id", "_lastUpdated"):
            keys.append((name, descending))
            continue
        param = registry.get(request.resource_type, name)
        if param is None or param.type not in (*SORT_COLUMN, "date"):
            _refuse_or_ignore(f"_sort={name}", strict, request.ignored)
            continue
        keys.append((name, descending))
    return keys


# --- building the query --------------------------------------------------------------------


def criterion_q(ctx: Ctx, criterion: Criterion) -> Q:
    if criterion.param is None and criterion.modifier == "missing":
        # _id and _lastUpdated: every resource has them (search.html#missing)
        if criterion.values not in (["true"], ["false"]):
            raise BadRequest(f"{criterion.code}:missing takes true or false")
        return Q(pk__isnull=criterion.values == ["true"])
    if criterion.code == "_id":
        q = Q(logical_id__in=criterion.values)
        return ~q if criterion.modifier == "not" else q
    if criterion.code == "_lastUpdated":
        ors = Q()
        for value in criterion.values:
            ors |= date.point_q("last_updated", value)
        return ors
    if criterion.type == "has":
        return _has_q(ctx, criterion)
    if criterion.type == "list":
        return reference.list_q(criterion)
    if criterion.type == "reference":
        return reference.match(ctx, criterion, chain_q=lambda t, c: criterion_q(Ctx((t,)), c))
    return MATCHERS[criterion.type](ctx, criterion)


def _has_q(ctx: Ctx, criterion: Criterion) -> Q:
    """``_has:Observation:patient:code=…`` (search.html#has): referenced by matching sources."""
    assert criterion.has is not None
    return reference.has_q(ctx, criterion.has, lambda t, c: criterion_q(Ctx((t,)), c))


_WHERE_PATIENT = re.compile(r"\.where\(resolve\(\) is Patient\)")


@lru_cache(maxsize=1024)
def _element(expression: str) -> str:
    """A reference parameter's expression without its ``.where(resolve() is Patient)``: the
    element it reads (a few hundred definitions, each worked out once)."""
    return _WHERE_PATIENT.sub("", expression)


@cache
def _scoping_element(resource_type: str) -> str | None:
    """The element whose Patient reference fills the index rows' ``patient`` column, if single.

    Scoping is exact only when that element holds at most one reference (``Observation.subject``):
    then every resource matching ``subject=Patient/X`` has X in its rows' ``patient`` column.
    """
    codes = registry.compartment_params("Patient", resource_type)
    if not codes:
        return None
    first = registry.get(resource_type, codes[0])
    if first is None or not first.expression or "|" in first.expression:
        return None
    element = _element(first.expression)
    name = element.split(".", 1)[1] if "." in element else ""
    if not name or "." in name or "(" in name:
        return None
    from fhir.resources.R4B import get_fhir_model_class

    field_info = get_fhir_model_class(resource_type).model_fields.get(name)
    if field_info is None or "List" in str(field_info.annotation):
        return None
    return element


def scoped_patient(request: SearchRequest) -> str | None:
    """The Patient id a search is limited to by a plain ``patient``/``subject`` criterion."""
    found = scoping(request)
    return None if found is None else found[1]


def scoping(request: SearchRequest) -> tuple[int, str] | None:
    """(position in ``request.criteria``, Patient id) of the first criterion that limits the
    search to one patient (``scoped_patient``)."""
    if len(request.resource_types) != 1:
        return None
    element = _scoping_element(request.resource_type)
    if element is None:
        return None
    for i, (_name, _value, c) in enumerate(request.criteria):
        if c.type != "reference" or c.modifier or c.chain is not None or len(c.values) != 1:
            continue
        if c.param is None or _element(c.param.expression or "") != element:
            continue
        value = c.values[0]
        if "/" in value:
            kind, _, ident = value.rpartition("/")
            if kind.rsplit("/", 1)[-1] == "Patient" and ident:
                return i, ident
        elif c.target_type == "Patient" or c.param.targets == ("Patient",):
            return i, value
    return None


def conditions(request: SearchRequest) -> list[Q]:
    """One condition on the resources per criterion (AND-ed), the one that scopes the search
    to a patient last.

    Why last: every index row of the scoped patient's range meets it but for the few that the
    ``patient`` column holds inexactly, so it removes the fewest rows. In a prepared
    statement's generic plan PostgreSQL estimates each criterion at a row or so, and then
    checks the criteria in the order written: with the scoping one first, each of the
    patient's heart rates was looked up in the reference index before the date ranges had
    removed two thirds of them (search.py's query a at 1M: 2.4-2.6 ms of execution at p50,
    1.7-1.9 with it last)."""
    found = scoping(request)
    ctx = Ctx(request.resource_types, None if found is None else found[1])
    out = [criterion_q(ctx, criterion) for _name, _value, criterion in request.criteria]
    if found is not None:
        out.append(out.pop(found[0]))
    return out


def matches_sql(request: SearchRequest, where: list[Q]) -> tuple[str, list] | None:
    """The ids of the resources a search in the usual order matches, from the index tables
    alone, written without the ORM (``index_sql``); None when the ORM must build it."""
    if request.sort:
        return None
    return index_sql.matches(request.resource_types, where, request.snapshot)


def one_patient(where: list[Q]) -> bool:
    """The search reads only the index rows of the patient it is scoped to (``scoped_patient``)."""
    return index_sql.one_patient(where)


def apply(request: SearchRequest, where: list[Q] | None = None) -> QuerySet[Resource]:
    """The search as a QuerySet; ``where``: its ``conditions`` when the caller has them."""
    if request.resource_types == ("*",):
        qs = Resource.objects.filter(deleted=False)
    elif len(request.resource_types) == 1:
        qs = Resource.objects.filter(resource_type=request.resource_type, deleted=False)
    else:
        qs = Resource.objects.filter(resource_type__in=request.resource_types, deleted=False)
    for condition in conditions(request) if where is None else where:
        qs = qs.filter(condition)
    if request.snapshot is not None:
        qs = qs.filter(pk__lte=request.snapshot)
    order = []
    for index, (code, descending) in enumerate(request.sort):
        if code in ("_id", "_lastUpdated"):
            key = _bytewise(F("logical_id")) if code == "_id" else F("last_updated")
            order.append(key.desc() if descending else key.asc())
            continue
        alias = f"sort_{index}"
        qs = qs.annotate(**{alias: _sort_key(request.resource_type, code, descending)})
        order.append(
            F(alias).desc(nulls_last=True) if descending else F(alias).asc(nulls_last=True)
        )
    return qs.order_by(*order, "pk")


def _sort_key(resource_type: str, code: str, descending: bool) -> Subquery:
    param = registry.get(resource_type, code)
    assert param is not None
    model = MODEL_BY_TYPE[param.type]
    column = SORT_COLUMN.get(param.type) or ("high" if descending else "low")
    rows = model.objects.filter(resource_id=OuterRef("pk")).filter(param_q((resource_type,), code))
    if param.type == "quantity":
        # In canonical units where the unit converts, so that 154.3 [lb_av] (70 kg) sorts
        # before 82 kg; as given otherwise.
        value = Coalesce("canonical_value", "value")
        rows = rows.annotate(sort_key=value).order_by(value.desc() if descending else value.asc())
        return Subquery(rows.values("sort_key")[:1])
    if param.type in ("date", "number"):
        ordered = rows.order_by(f"-{column}" if descending else column).values(column)[:1]
        return Subquery(ordered)
    key = _bytewise(F(column))
    rows = rows.annotate(sort_key=key).order_by(key.desc() if descending else key.asc())
    return _bytewise(Subquery(rows.values("sort_key")[:1]))


def _bytewise(expression: Expression) -> Expression:
    """Text compared by code point, the same on every database (search.html#sort).

    PostgreSQL sorts text by the database's collation, which for en_US and ICU locales ignores
    punctuation and case at first (``s-2`` after ``s 3`` and ``S0``); SQLite compares bytes.
    ``COLLATE "C"`` makes PostgreSQL compare bytes too, so a sort gives one order everywhere.
    """
    if connection.vendor == "postgresql":
        return Collate(expression, "C")
    return expression


def snapshot_now() -> int:
    """The newest resource row now: later pages leave out resources created after the first."""
    return Resource.objects.aggregate(top=Max("pk"))["top"] or 0


def match_ids(resource_type: str, query: str, *, limit: int) -> list[str]:
    """Ids of the resources a conditional interaction's query matches (strict parsing)."""
    items = parse_query_string(query.lstrip("?"))
    request = parse(resource_type, items, strict=True)
    if not request.criteria:
        raise BadRequest(f"The condition '{query}' selects nothing: give search criteria")
    return list(apply(request).values_list("logical_id", flat=True)[:limit])


def page_query(request: SearchRequest, offset: int) -> str:
    items = request.applied_query()
    if request.snapshot is not None:
        items.append(("_snapshot", str(request.snapshot)))
    if offset:
        items.append(("_offset", str(offset)))
    return encode_query(items)


# What quote_plus leaves as it is: most names and values of a search (patient ids, dates, counts).
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*\Z").match


def encode_query(items: list[tuple[str, str]]) -> str:
    """``urlencode(items)``, the same text, without quoting what needs none: each search
    encodes its parameters for its links (search.html#conformance), and urlencode's four calls
    per name and value cost a patient's search about 0.01 ms more (bench/stack.py)."""
    return "&".join(_pair_kept(k, v) if len(k) + len(v) <= 256 else _pair(k, v) for k, v in items)


def _pair(name: str, value: str) -> str:
    return f"{_encoded(name)}={_encoded(value)}"


def _encoded(text: str) -> str:
    return text if _PLAIN(text) else quote_plus(text)


# A monitoring client sends the same few codes and composite values all day
# (``http://loinc.org|8867-4$gt120``): each pair is encoded once, as quoting one cost about as
# many instructions as the rest of a link. Only short pairs are kept.
_pair_kept = lru_cache(maxsize=4096)(_pair)


def supported_params(resource_type: str) -> list[tuple[str, str, str]]:
    """(name, type, definition url) of the parameters a type can be searched by, for /metadata."""
    params = [
        ("_id", "token", "http://hl7.org/fhir/SearchParameter/Resource-id"),
        ("_lastUpdated", "date", "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"),
        ("_list", "special", "http://hl7.org/fhir/SearchParameter/Resource-list"),
    ]
    from .extract import searchable

    for param in searchable(resource_type):
        params.append((param.code, param.type, param.url))
    return params
