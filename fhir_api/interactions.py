"""Every FHIR RESTful interaction as a function from a parsed request to an ``Answer``.

The DRF views and the transaction/batch processor both call these, so an interaction behaves
the same whether it arrives alone or as a Bundle entry (hl7.org/fhir/R4B/http.html).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.http import http_date, parse_http_date_safe

from . import reads, services
from .exceptions import BadRequest, Issue, operation_outcome
from .models import Resource
from .renderers import raw
from .resource_types import RESOURCE_TYPES


@dataclass
class Context:
    """What every interaction needs to know about the request it serves."""

    base: str  # e.g. https://host/fhir, no trailing slash
    prefer_return: str = "representation"  # minimal | representation | OperationOutcome
    strict: bool = False  # Prefer: handling=strict
    url: str = ""  # this request's URL without query, for Bundle links
    method: str = "GET"  # the HTTP method: an operation that affects state answers POST only


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    resource: Resource | None = None  # the row a write left current, for Bundle entries


def parse_prefer(header: str | None) -> tuple[str, bool]:
    """``Prefer: return=…, handling=…`` (http.html#ops, search.html#errors)."""
    prefer_return, strict = "representation", False
    if not header:  # nearly every request
        return prefer_return, strict
    for part in header.split(","):
        for token in part.split(";"):
            key, _, value = token.strip().partition("=")
            value = value.strip().strip('"')
            if key.strip() == "return" and value in (
                "minimal",
                "representation",
                "OperationOutcome",
            ):
                prefer_return = value
            elif key.strip() == "handling":
                strict = value == "strict"
    return prefer_return, strict


def version_headers(ctx: Context, row: Resource, *, location: bool) -> dict[str, str]:
    headers = {
        "ETag": f'W/"{row.version_id}"',
        "Last-Modified": http_date(row.last_updated.timestamp()),
    }
    if location:
        headers["Location"] = (
            f"{ctx.base}/{row.resource_type}/{row.logical_id}/_history/{row.version_id}"
        )
    return headers


def write_answer(ctx: Context, outcome: services.WriteOutcome, *, verb: str) -> Answer:
    row = outcome.resource
    status = 201 if outcome.created else 200
    headers = version_headers(ctx, row, location=True)
    if ctx.prefer_return == "minimal":
        body = None
    elif ctx.prefer_return == "OperationOutcome":
        what = f"{row.resource_type}/{row.logical_id} version {row.version_id}"
        text = f"{verb} {what}" if outcome.changed else f"Found existing {what}; nothing created"
        body = operation_outcome([Issue("information", "informational", text)])
    else:
        body = raw(row.content)
    return Answer(status, body, headers, row)


def create(ctx: Context, resource_type: str, body: Any, if_none_exist: str | None) -> Answer:
    return write_answer(
        ctx, services.create(resource_type, body, if_none_exist=if_none_exist), verb="Created"
    )


def update(
    ctx: Context,
    resource_type: str,
    logical_id: str,
    body: Any,
    if_match: str | None,
    if_none_match: str | None = None,
) -> Answer:
    outcome = services.update(
        resource_type, logical_id, body, if_match=if_match, if_none_match=if_none_match
    )
    return write_answer(ctx, outcome, verb="Updated")


def conditional_update(
    ctx: Context,
    resource_type: str,
    query: str,
    body: Any,
    if_match: str | None,
    if_none_match: str | None = None,
) -> Answer:
    outcome = services.conditional_update(
        resource_type, query, body, if_match=if_match, if_none_match=if_none_match
    )
    return write_answer(ctx, outcome, verb="Updated")


def patch(
    ctx: Context, resource_type: str, logical_id: str, body: Any, if_match: str | None
) -> Answer:
    return write_answer(
        ctx, services.patch(resource_type, logical_id, body, if_match=if_match), verb="Patched"
    )


def conditional_patch(
    ctx: Context, resource_type: str, query: str, body: Any, if_match: str | None
) -> Answer:
    outcome = services.conditional_patch(resource_type, query, body, if_match=if_match)
    return write_answer(ctx, outcome, verb="Patched")


def _delete_answer(outcome: services.WriteOutcome | None) -> Answer:
    if outcome is None:
        return Answer(204)
    headers = {"ETag": f'W/"{outcome.resource.version_id}"'}
    return Answer(204, None, headers, outcome.resource)


def delete(ctx: Context, resource_type: str, logical_id: str, if_match: str | None) -> Answer:
    outcome = services.delete(resource_type, logical_id, if_match=if_match)
    return _delete_answer(outcome)


def conditional_delete(ctx: Context, resource_type: str, query: str) -> Answer:
    return _delete_answer(services.conditional_delete(resource_type, query))


def read(
    ctx: Context,
    resource_type: str,
    logical_id: str,
    if_none_match: str | None = None,
    if_modified_since: str | None = None,
) -> Answer:
    """read (hl7.org/fhir/R4B/http.html#read), conditional with If-None-Match/If-Modified-Since."""
    row = reads.read(resource_type, logical_id)
    headers = version_headers(ctx, row, location=False)
    if if_none_match is not None:
        tags = {t.strip() for t in if_none_match.split(",")}
        if headers["ETag"] in tags or f'"{row.version_id}"' in tags or "*" in tags:
            return Answer(304, None, headers)
    elif if_modified_since is not None:
        # RFC 9110 §13.1.3: an If-Modified-Since that is not an HTTP-date is ignored.
        since = parse_http_date_safe(if_modified_since)
        if since is not None and int(row.last_updated.timestamp()) <= since:
            return Answer(304, None, headers)
    return Answer(200, raw(row.content), headers, row)


def vread(ctx: Context, resource_type: str, logical_id: str, version: str) -> Answer:
    row = reads.vread(resource_type, logical_id, version)
    headers = {
        "ETag": f'W/"{row.version_id}"',
        "Last-Modified": http_date(row.last_updated.timestamp()),
    }
    return Answer(200, raw(row.content), headers)


def search(
    ctx: Context, resource_type: str | tuple[str, ...], items: list[tuple[str, str]]
) -> Answer:
    """search-type, or with a tuple of types (``("*",)`` for all) search-system."""
    page = reads.search(resource_type, items, strict=ctx.strict)
    return Answer(200, reads.searchset_bundle(ctx.base, ctx.url, page))


def search_system(ctx: Context, items: list[tuple[str, str]]) -> Answer:
    """``GET [base]?_type=Patient,Observation&…`` (hl7.org/fhir/R4B/http.html#search,
    search.html#type): the types are those ``_type`` lists, every type without it.

    Each ``_type`` is a comma-separated OR of types; repeated, they are AND-ed like any
    parameter (so ``_type=A,B&_type=B`` is B). Only the parameters every type searched has
    apply (``_id``, ``_lastUpdated``, ``_tag``, ``_profile``, ``_security``…).
    """
    types: list[str] | None = None
    rest: list[tuple[str, str]] = []
    for name, value in items:
        if name != "_type":
            rest.append((name, value))
            continue
        listed = [t.strip() for t in value.split(",") if t.strip()]
        unknown = [t for t in listed if t not in RESOURCE_TYPES]
        if unknown or not listed:
            raise BadRequest(f"_type={value}: not a list of resource types")
        types = listed if types is None else [t for t in types if t in listed]
    if types is not None and not types:
        raise BadRequest("The _type parameters given exclude every resource type")
    selected = tuple(dict.fromkeys(types)) if types else ("*",)
    return search(ctx, selected, rest)


def history(
    ctx: Context,
    params: dict[str, str],
    resource_type: str | None = None,
    logical_id: str | None = None,
) -> Answer:
    page = reads.history(params, resource_type, logical_id)
    return Answer(200, reads.history_bundle(ctx.base, ctx.url, page))
