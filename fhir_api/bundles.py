"""Transaction and batch Bundles (hl7.org/fhir/R4B/http.html#transaction).

A transaction is all-or-nothing in one database transaction. Before anything is written the
processor chooses the id of every created resource, resolves conditional creates and updates,
and rewrites ``urn:uuid``/``fullUrl`` references and conditional references
(``Patient?identifier=x|y``) to the resources they mean. Entries then run in the order the
specification gives (DELETE, POST, PUT/PATCH, GET) and the response lists them in the order
they were sent. A batch runs each entry on its own; one entry's failure is reported in its
response entry and does not undo the others.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from django.db import transaction
from django.utils.http import http_date

from . import interactions, json_io, services
from .exceptions import BadRequest, FHIRError, MethodNotAllowed, NotFound, PreconditionFailed
from .resource_types import RESOURCE_TYPES
from .search.dates import format_instant, parse_interval
from .search.query import match_ids

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
# Bundle.entry.request elements that are strings (code, uri, instant) in R4B (bundle.html).
REQUEST_STRINGS = ("method", "url", "ifNoneMatch", "ifModifiedSince", "ifMatch", "ifNoneExist")


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _split_url(ctx: interactions.Context, url: str) -> tuple[list[str], str]:
    if url.startswith(ctx.base + "/"):
        url = url[len(ctx.base) + 1 :]
    path, _, query = url.partition("?")
    return [p for p in path.strip("/").split("/") if p], query


def _patch_operations(body: Any) -> Any:
    """A PATCH entry carries its JSON Patch as a Binary resource (http.html#patch)."""
    if isinstance(body, dict) and body.get("resourceType") == "Binary":
        if "json-patch" not in str(body.get("contentType", "")):
            raise BadRequest(
                "A PATCH entry's Binary must have contentType application/json-patch+json"
            )
        data = body.get("data")
        if not isinstance(data, str):
            raise BadRequest("The PATCH entry's Binary.data must be base64 text")
        try:
            return json_io.loads(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError):
            raise BadRequest("The PATCH entry's Binary.data is not base64") from None
    if isinstance(body, list):
        return body
    raise BadRequest("A PATCH entry needs a Binary resource holding a JSON Patch")


def _if_modified_since(request: dict[str, Any]) -> str | None:
    """``request.ifModifiedSince`` is a FHIR instant; a read compares HTTP-dates (RFC 9110)."""
    value = request.get("ifModifiedSince")
    if value is None:
        return None
    return http_date(parse_interval(value).low.timestamp())


def route(ctx: interactions.Context, request: dict[str, Any], body: Any) -> interactions.Answer:
    """Run one Bundle entry's request through the same interaction as the REST API."""
    method = request.get("method")
    url = request.get("url")
    if not isinstance(method, str) or not isinstance(url, str) or not url:
        raise BadRequest("Each entry needs request.method and request.url")
    parts, query = _split_url(ctx, url)
    if parts and parts[0] not in RESOURCE_TYPES and parts[0] not in ("_history", "metadata"):
        raise NotFound(f"Unknown resource type '{parts[0]}' in '{url}'", code="not-supported")
    n = len(parts)
    if method in ("GET", "HEAD"):
        # Paging links of a searchset or history entry are relative to the entry's URL.
        ctx = replace(ctx, url=f"{ctx.base}/{'/'.join(parts)}")
        if n == 1 and parts[0] == "_history":
            return interactions.history(ctx, dict(parse_qsl(query)))
        if n == 1:
            return interactions.search(ctx, parts[0], parse_qsl(query, keep_blank_values=True))
        if n == 2 and parts[1] == "_history":
            return interactions.history(ctx, dict(parse_qsl(query)), parts[0])
        if n == 2:
            return interactions.read(
                ctx, parts[0], parts[1], request.get("ifNoneMatch"), _if_modified_since(request)
            )
        if n == 3 and parts[2] == "_history":
            return interactions.history(ctx, dict(parse_qsl(query)), parts[0], parts[1])
        if n == 4 and parts[2] == "_history":
            return interactions.vread(ctx, parts[0], parts[1], parts[3])
    elif method == "POST" and n == 1:
        return interactions.create(ctx, parts[0], body, request.get("ifNoneExist"))
    elif method == "PUT" and n == 1 and query:
        return interactions.conditional_update(
            ctx, parts[0], query, body, request.get("ifMatch"), request.get("ifNoneMatch")
        )
    elif method == "PUT" and n == 2:
        return interactions.update(
            ctx, parts[0], parts[1], body, request.get("ifMatch"), request.get("ifNoneMatch")
        )
    elif method == "PATCH" and n == 1 and query:
        ops = _patch_operations(body)
        return interactions.conditional_patch(ctx, parts[0], query, ops, request.get("ifMatch"))
    elif method == "PATCH" and n == 2:
        ops = _patch_operations(body)
        return interactions.patch(ctx, parts[0], parts[1], ops, request.get("ifMatch"))
    elif method == "DELETE" and n == 1 and query:
        return interactions.conditional_delete(ctx, parts[0], query)
    elif method == "DELETE" and n == 2:
        return interactions.delete(ctx, parts[0], parts[1], request.get("ifMatch"))
    raise MethodNotAllowed(f"{method} {url} is not an interaction this server supports in a Bundle")


def _response_entry(answer: interactions.Answer) -> dict[str, Any]:
    response: dict[str, Any] = {"status": _status_line(answer.status)}
    if "Location" in answer.headers:
        response["location"] = answer.headers["Location"]
    if "ETag" in answer.headers:
        response["etag"] = answer.headers["ETag"]
    if answer.resource is not None and not answer.resource.deleted:
        response["lastModified"] = format_instant(answer.resource.last_updated)
    entry: dict[str, Any] = {}
    if answer.body is not None and answer.status < 300:
        entry["resource"] = answer.body
    entry["response"] = response
    return entry


def _error_entry(error: FHIRError) -> dict[str, Any]:
    return {"response": {"status": _status_line(error.status), "outcome": error.outcome()}}


def _entries(bundle: Any, kind: str) -> list[dict[str, Any]]:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise BadRequest(f"{kind}: Bundle.entry must be a list of objects")
    for index, entry in enumerate(entries):
        request = entry.get("request")
        if not isinstance(request, dict):
            raise BadRequest(f"{kind}: entry {index} has no request")
        for name in REQUEST_STRINGS:
            if name in request and not isinstance(request[name], str):
                raise BadRequest(f"{kind}: entry {index} request.{name} must be a string")
    return entries


def process(ctx: interactions.Context, bundle: Any) -> dict[str, Any]:
    """POST [base] with a transaction or batch Bundle; returns the response Bundle."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest("POST to the base URL takes a Bundle of type transaction or batch")
    kind = bundle.get("type")
    if kind == "transaction":
        return _transaction(ctx, _entries(bundle, "transaction"))
    if kind == "batch":
        return _batch(ctx, _entries(bundle, "batch"))
    raise BadRequest(f"Bundle.type must be transaction or batch, not {kind!r}")


def _batch(ctx: interactions.Context, entries: list[dict[str, Any]]) -> dict[str, Any]:
    out = []
    for entry in entries:
        try:
            with transaction.atomic():
                answer = route(ctx, entry["request"], entry.get("resource"))
            out.append(_response_entry(answer))
        except FHIRError as error:
            out.append(_error_entry(error))
    response: dict[str, Any] = {"resourceType": "Bundle", "type": "batch-response"}
    if out:  # no empty arrays in FHIR JSON (json.html)
        response["entry"] = out
    return response


class _References:
    """Maps the names a transaction uses for resources (fullUrl, urn:uuid) to Type/id."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def add(self, full_url: Any, target: str) -> None:
        if isinstance(full_url, str) and full_url:
            self.names[full_url] = target

    def rewrite(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._rewrite_item(k, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.rewrite(v) for v in value]
        return value

    def _rewrite_item(self, key: str, value: Any) -> Any:
        if isinstance(value, str):
            if value in self.names:
                return self.names[value]
            if key == "reference" and "?" in value and not value.startswith(("#", "urn:")):
                return self._conditional(value)
            return value
        return self.rewrite(value)

    def _conditional(self, reference: str) -> str:
        """``Patient?identifier=x|y`` must match exactly one resource (http.html#trules)."""
        resource_type, _, query = reference.partition("?")
        if resource_type not in RESOURCE_TYPES:
            raise BadRequest(f"The conditional reference '{reference}' names no resource type")
        ids = match_ids(resource_type, query, limit=2)
        if len(ids) != 1:
            how = "no" if not ids else "more than one"
            raise PreconditionFailed(
                f"The conditional reference '{reference}' matches {how} resource"
            )
        return f"{resource_type}/{ids[0]}"


def _plan(
    ctx: interactions.Context, entries: list[dict[str, Any]]
) -> tuple[_References, dict[int, str], dict[int, dict[str, Any]]]:
    """Choose ids and resolve conditions before writing, so that references can be rewritten."""
    refs = _References()
    assigned: dict[int, str] = {}
    requests: dict[int, dict[str, Any]] = {}
    touched: set[str] = set()
    for index, entry in enumerate(entries):
        request = dict(entry["request"])
        requests[index] = request
        try:
            target = _plan_entry(ctx, index, entry, request, assigned)
        except FHIRError as error:
            _name_entry(error, index, entry["request"])
            raise
        # A create's new id is unique, but a conditional create may resolve to a resource that
        # another entry changes: overlapping identities fail the transaction (http.html#trules).
        if target is not None:
            if target in touched:
                raise BadRequest(
                    f"Transaction entry {index}: {target} is changed by more than one entry"
                )
            touched.add(target)
            refs.add(entry.get("fullUrl"), target)
    return refs, assigned, requests


def _plan_entry(
    ctx: interactions.Context,
    index: int,
    entry: dict[str, Any],
    request: dict[str, Any],
    assigned: dict[int, str],
) -> str | None:
    """Choose the id of a create and resolve a conditional update; the Type/id it changes."""
    method, url = request.get("method"), request.get("url")
    if not isinstance(method, str) or not isinstance(url, str):
        raise BadRequest("The entry needs request.method and request.url")
    parts, query = _split_url(ctx, url)
    if method == "POST" and len(parts) == 1:
        found = None
        if request.get("ifNoneExist"):
            services.lock_condition(parts[0], request["ifNoneExist"])
            found = services.single_match(parts[0], request["ifNoneExist"], "create")
        assigned[index] = found or services.new_id()
        return f"{parts[0]}/{assigned[index]}"
    if method == "PUT" and len(parts) == 1 and query:
        services.lock_condition(parts[0], query)
        found = services.single_match(parts[0], query, "update")
        resource = entry.get("resource")
        body_id = resource.get("id") if isinstance(resource, dict) else None
        chosen = found or body_id or services.new_id()
        request["url"] = f"{parts[0]}/{chosen}"
        return request["url"]
    if method in ("PUT", "PATCH", "DELETE") and len(parts) == 2:
        return f"{parts[0]}/{parts[1]}"
    return None


def _name_entry(error: FHIRError, index: int, request: dict[str, Any]) -> None:
    """Prefix an error's diagnostics with the transaction entry it comes from."""
    prefix = f"Transaction entry {index} ({request.get('method')} {request.get('url')}): "
    error.diagnostics = prefix + error.diagnostics
    error.issues = [
        type(i)(i.severity, i.code, prefix + i.diagnostics, i.expression) for i in error.issues
    ]


def _transaction(ctx: interactions.Context, entries: list[dict[str, Any]]) -> dict[str, Any]:
    answers: dict[int, interactions.Answer] = {}
    with transaction.atomic():
        refs, assigned, requests = _plan(ctx, entries)
        order = sorted(range(len(entries)), key=lambda i: ORDER.get(requests[i].get("method"), 9))
        for index in order:
            request = requests[index]
            body = entries[index].get("resource")
            try:
                if body is not None:
                    body = refs.rewrite(body)
                if request.get("method") == "POST" and index in assigned:
                    resource_type = _split_url(ctx, request["url"])[0][0]
                    # A conditional create that finds its match answers 200 as the REST API
                    # does: location, etag and (unless return=minimal) the resource.
                    outcome = services.create(
                        resource_type,
                        body,
                        if_none_exist=request.get("ifNoneExist"),
                        logical_id=assigned[index],
                    )
                    answers[index] = interactions.write_answer(ctx, outcome, verb="Created")
                else:
                    if (
                        request.get("method") == "PUT"
                        and isinstance(body, dict)
                        and "id" not in body
                    ):
                        body = {**body, "id": _split_url(ctx, request["url"])[0][-1]}
                    answers[index] = route(ctx, request, body)
            except FHIRError as error:
                _name_entry(error, index, entries[index]["request"])
                raise
    response: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction-response"}
    if entries:
        response["entry"] = [_response_entry(answers[i]) for i in range(len(entries))]
    return response
