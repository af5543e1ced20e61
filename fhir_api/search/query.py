"""Turning FHIR search parameters into a query over the store (hl7.org/fhir/R4B/search.html).

Supported now: ``_id``, ``_lastUpdated`` (every prefix) and ``identifier`` (token) on every
type, with ``_count``, ``_sort`` (``_id``, ``_lastUpdated``), ``_total`` and ``_summary=count``.
Unknown parameters are refused under ``Prefer: handling=strict`` and ignored under lenient (the
default); conditional interactions are always strict, because ignoring part of a condition
would match resources the client did not mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from ..exceptions import BadRequest
from ..models import Resource, TokenIndex
from ..resource_types import WITH_IDENTIFIER
from .dates import Interval, parse_interval

# Parameters that shape the result rather than select resources (search.html#return).
RESULT_PARAMS = {
    "_count",
    "_sort",
    "_total",
    "_summary",
    "_elements",
    "_format",
    "_pretty",
    "_offset",
}
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
SORTABLE = {"_id": "logical_id", "_lastUpdated": "last_updated"}
SUPPORTED = ("_id", "_lastUpdated", "identifier")


def supported_params(resource_type: str) -> list[tuple[str, str, str]]:
    """(name, type, description) of the parameters a type can be searched by, for /metadata."""
    params = [
        ("_id", "token", "The logical id of the resource"),
        ("_lastUpdated", "date", "When the resource version last changed (all prefixes)"),
    ]
    if resource_type in WITH_IDENTIFIER:
        params.append(("identifier", "token", "A business identifier: [system]|[value]"))
    return params


@dataclass
class SearchRequest:
    resource_type: str
    criteria: list[tuple[str, str, str]] = field(default_factory=list)  # (name, modifier, value)
    ignored: list[str] = field(default_factory=list)
    count: int = 0
    offset: int = 0
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (param, descending)
    total: str = "accurate"
    summary: str | None = None

    def applied_query(self) -> list[tuple[str, str]]:
        """The parameters actually applied, for the Bundle's ``self`` link."""
        items = [(f"{n}:{m}" if m else n, v) for n, m, v in self.criteria]
        if self.sort:
            items.append(("_sort", ",".join(("-" if d else "") + p for p, d in self.sort)))
        if self.summary:
            items.append(("_summary", self.summary))
        items.append(("_count", str(self.count)))
        return items


def parse_query_string(query: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    except ValueError as exc:
        raise BadRequest(f"The query string cannot be read: {exc}") from None


def _int(name: str, value: str, minimum: int) -> int:
    if not value.isdigit() or int(value) < minimum:
        raise BadRequest(f"{name}={value!r} must be a whole number ≥ {minimum}")
    return int(value)


def parse(resource_type: str, items: list[tuple[str, str]], *, strict: bool) -> SearchRequest:
    request = SearchRequest(resource_type, count=settings.FHIR_DEFAULT_COUNT)
    for raw_name, value in items:
        name, _, modifier = raw_name.partition(":")
        if name in RESULT_PARAMS:
            if name == "_count":
                request.count = min(_int("_count", value, 0), settings.FHIR_MAX_COUNT)
            elif name == "_offset":
                request.offset = _int("_offset", value, 0)
            elif name == "_sort":
                request.sort = _parse_sort(value, strict=strict, ignored=request.ignored)
            elif name == "_total":
                if value not in ("none", "estimate", "accurate"):
                    raise BadRequest("_total must be none, estimate or accurate")
                request.total = value
            elif name == "_summary":
                if value not in ("true", "false", "count", "data", "text"):
                    raise BadRequest("_summary must be true, false, count, data or text")
                request.summary = value if value == "count" else None
                if value not in ("count", "false"):
                    _refuse_or_ignore(f"_summary={value}", strict, request.ignored)
            elif name == "_elements":
                _refuse_or_ignore("_elements", strict, request.ignored)
            continue
        if name not in SUPPORTED or (name == "identifier" and resource_type not in WITH_IDENTIFIER):
            _refuse_or_ignore(raw_name, strict, request.ignored)
            continue
        if modifier:
            _refuse_or_ignore(raw_name, strict, request.ignored)
            continue
        if value == "":
            continue
        _check_value(name, value)
        request.criteria.append((name, modifier, value))
    return request


def _refuse_or_ignore(what: str, strict: bool, ignored: list[str]) -> None:
    if strict:
        raise BadRequest(f"The search parameter '{what}' is not supported", code="not-supported")
    ignored.append(what)


def _parse_sort(value: str, *, strict: bool, ignored: list[str]) -> list[tuple[str, bool]]:
    keys = []
    for part in value.split(","):
        descending = part.startswith("-")
        name = part.lstrip("-")
        if name in SORTABLE:
            keys.append((name, descending))
        elif name:
            _refuse_or_ignore(f"_sort={name}", strict, ignored)
    return keys


def _check_value(name: str, value: str) -> None:
    if name == "_lastUpdated":
        for part in value.split(","):
            _split_prefix(part)


def _split_prefix(value: str) -> tuple[str, Interval]:
    prefix = value[:2] if value[:2] in PREFIXES else "eq"
    text = value[2:] if value[:2] in PREFIXES else value
    return prefix, parse_interval(text)


def _date_q(column: str, value: str) -> Q:
    """A point-in-time column against a date search value (search.html#prefix)."""
    prefix, iv = _split_prefix(value)
    c = column
    if prefix == "eq":
        return Q(**{f"{c}__gte": iv.low, f"{c}__lt": iv.high})
    if prefix == "ne":
        return Q(**{f"{c}__lt": iv.low}) | Q(**{f"{c}__gte": iv.high})
    if prefix in ("gt", "sa"):
        return Q(**{f"{c}__gte": iv.high})
    if prefix in ("lt", "eb"):
        return Q(**{f"{c}__lt": iv.low})
    if prefix == "ge":
        return Q(**{f"{c}__gte": iv.low})
    if prefix == "le":
        return Q(**{f"{c}__lt": iv.high})
    # ap: within 10% of the distance between the value and now (search.html#prefix).
    now: datetime = timezone.now()
    margin = abs(now - iv.low) * 0.1
    return Q(**{f"{c}__gte": iv.low - margin, f"{c}__lt": iv.high + margin})


def _token_q(resource_type: str, param: str, value: str) -> Q:
    ors = Q()
    for part in value.split(","):
        rows = TokenIndex.objects.filter(resource_type=resource_type, param=param)
        if "|" in part:
            system, _, code = part.partition("|")
            rows = (
                rows.filter(system=system) if code == "" else rows.filter(system=system, code=code)
            )
            if code == "" and system == "":
                raise BadRequest(f"{param}={value!r}: a token needs a code or a system")
        else:
            rows = rows.filter(code=part)
        ors |= Q(pk__in=rows.values("resource_id"))
    return ors


def apply(request: SearchRequest) -> QuerySet[Resource]:
    qs = Resource.objects.filter(resource_type=request.resource_type, deleted=False)
    for name, _modifier, value in request.criteria:
        if name == "_id":
            qs = qs.filter(logical_id__in=value.split(","))
        elif name == "_lastUpdated":
            ors = Q()
            for part in value.split(","):
                ors |= _date_q("last_updated", part)
            qs = qs.filter(ors)
        elif name == "identifier":
            qs = qs.filter(_token_q(request.resource_type, "identifier", value))
    order = [("-" if desc else "") + SORTABLE[p] for p, desc in request.sort] + ["pk"]
    return qs.order_by(*order)


def match_ids(resource_type: str, query: str, *, limit: int) -> list[str]:
    """Ids of the resources a conditional interaction's query matches (strict parsing)."""
    items = parse_query_string(query.lstrip("?"))
    request = parse(resource_type, items, strict=True)
    if not request.criteria:
        raise BadRequest(f"The condition '{query}' selects nothing: give search criteria")
    return list(apply(request).values_list("logical_id", flat=True)[:limit])


def page_query(request: SearchRequest, offset: int) -> str:
    items = [(k, v) for k, v in request.applied_query() if k != "_offset"]
    if offset:
        items.append(("_offset", str(offset)))
    return urlencode(items)
