"""The read side: read, vread, history and search, returning rows and Bundles.

Stored JSON is embedded in responses as it is (``renderers.raw``), never re-parsed.
hl7.org/fhir/R4B/http.html#read, #vread, #history, #search.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q, Subquery
from simplejson import RawJSON

from . import json_io
from .exceptions import BadRequest, Gone, Issue, NotFound, operation_outcome
from .models import Resource, ResourceVersion
from .renderers import raw
from .search import include as search_include
from .search import query as search_query
from .search import shapes as search_shapes
from .search.dates import format_instant, parse_interval
from .search.fetch import PageRow, fetch, followed_includes
from .search.shape import shape
from .validation import check_id, check_resource_type

# The read is the hottest query of the server: written once instead of built by the ORM on
# every request (which cost more CPU than the rest of a read). The values pass through the
# same database converters the ORM applies (SQLite returns text for dates and 0/1 for bools).
_READ_COLUMNS = ("id", "resource_type", "logical_id", "version_id", "last_updated", "deleted")
_READ_SQL = (
    f"SELECT {', '.join(_READ_COLUMNS)}, content FROM {Resource._meta.db_table}"
    " WHERE resource_type = %s AND logical_id = %s"
)
_converters: dict[str, list] = {}


def _read_converters() -> list:
    """(column position, converter, expression) for the columns the backend converts."""
    found = _converters.get(connection.vendor)
    if found is None:
        found = []
        for i, name in enumerate(_READ_COLUMNS):
            col = Resource._meta.get_field(name).get_col(Resource._meta.db_table)
            for conv in connection.ops.get_db_converters(col) + col.get_db_converters(connection):
                found.append((i, conv, col))
        _converters[connection.vendor] = found
    return found


def read(resource_type: str, logical_id: str) -> Resource:
    check_resource_type(resource_type)
    check_id(logical_id)
    with connection.cursor() as cursor:
        cursor.execute(_READ_SQL, [resource_type, logical_id])
        found = cursor.fetchone()
    if found is None:
        raise NotFound(f"{resource_type}/{logical_id} is not known")
    values = list(found)
    for i, conv, col in _read_converters():
        values[i] = conv(values[i], col, connection)
    row = Resource.from_db(connection.alias, None, values)
    if row.deleted:
        raise Gone(
            f"{resource_type}/{logical_id} was deleted",
            headers={"ETag": f'W/"{row.version_id}"'},
        )
    return row


def vread(resource_type: str, logical_id: str, version: str) -> ResourceVersion:
    check_resource_type(resource_type)
    check_id(logical_id)
    if not version.isdigit():
        raise BadRequest(f"'{version}' is not a version id")
    row = ResourceVersion.objects.filter(
        resource_type=resource_type, logical_id=logical_id, version_id=int(version)
    ).first()
    if row is None:
        raise NotFound(f"{resource_type}/{logical_id}/_history/{version} is not known")
    if row.deleted:
        raise Gone(f"Version {version} of {resource_type}/{logical_id} is a deletion")
    return row


@dataclass
class Page:
    rows: list[Any]
    total: int | None
    next_query: str | None
    previous_query: str | None
    self_query: str
    first_query: str
    included: list[Any] = field(default_factory=list)
    summary: str | None = None
    elements: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _count(value: str | None) -> int:
    if value is None:
        return settings.FHIR_DEFAULT_COUNT
    if not value.isdigit():
        raise BadRequest(f"_count={value!r} must be a whole number")
    return min(int(value), settings.FHIR_MAX_COUNT)


def history(
    params: dict[str, str], resource_type: str | None = None, logical_id: str | None = None
) -> Page:
    """Versions newest first, with ``_since``, ``_at`` and ``_count`` (http.html#history).

    Paging is by a cursor on the version row (``_before``), so versions written while a client
    pages through do not shift or repeat the pages it has not read yet.
    """
    qs = ResourceVersion.objects.all()
    if resource_type is not None:
        check_resource_type(resource_type)
        qs = qs.filter(resource_type=resource_type)
    if logical_id is not None:
        check_id(logical_id)
        qs = qs.filter(logical_id=logical_id)
        if not qs.exists():
            raise NotFound(f"{resource_type}/{logical_id} is not known")
    known = {"_since", "_at", "_count", "_before", "_format", "_pretty", "_list"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise BadRequest(f"History does not take the parameter(s) {', '.join(unknown)}")
    if "_since" in params:
        qs = qs.filter(last_updated__gte=parse_interval(params["_since"]).low)
    if "_at" in params:
        # Versions that were current at some point within the _at interval.
        at = parse_interval(params["_at"])
        following = ResourceVersion.objects.filter(
            resource_id=OuterRef("resource_id"), version_id=OuterRef("version_id") + 1
        ).values("last_updated")[:1]
        qs = qs.annotate(superseded=Subquery(following)).filter(
            Q(last_updated__lt=at.high) & (Q(superseded__isnull=True) | Q(superseded__gt=at.low))
        )
    # Whether the version before each one is a delete tombstone: a PUT after a delete created
    # the resource again (201 in the history entry's response, as the write answered).
    qs = qs.annotate(
        recreated=Exists(
            ResourceVersion.objects.filter(
                resource_id=OuterRef("resource_id"),
                version_id=OuterRef("version_id") - 1,
                deleted=True,
            )
        )
    )
    count = _count(params.get("_count"))
    base_items = [(k, params[k]) for k in ("_since", "_at") if k in params]
    total = qs.count()
    page_qs = qs.order_by("-pk")
    before = params.get("_before")
    if before is not None:
        if not before.isdigit():
            raise BadRequest("_before must be a version cursor from a next link")
        page_qs = page_qs.filter(pk__lt=int(before))
    rows = list(page_qs[: count + 1]) if count else []
    more = len(rows) > count
    rows = rows[:count]
    next_query = None
    if more and rows:
        next_query = urlencode([*base_items, ("_count", count), ("_before", rows[-1].pk)])
    first = urlencode([*base_items, ("_count", count)])
    this = urlencode([*base_items, ("_count", count)] + ([("_before", before)] if before else []))
    return Page(rows, total, next_query, None, this, first)


def estimate_count(qs) -> int:
    """``_total=estimate``: PostgreSQL's row estimate for the query, without counting."""
    if connection.vendor != "postgresql":
        return qs.count()
    sql, params = qs.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def search(
    resource_types: str | tuple[str, ...], items: list[tuple[str, str]], *, strict: bool
) -> Page:
    """Type- or system-level search (search.html): the matching current resources, one page.

    Paging is by offset within a snapshot: the first page records the newest resource row, and
    the links of later pages carry it, so resources created while a client pages do not shift
    the pages it has not read yet.
    """
    types = (resource_types,) if isinstance(resource_types, str) else resource_types
    for resource_type in types:
        if resource_type != "*":
            check_resource_type(resource_type)
    request = search_query.parse(resource_types, items, strict=strict)
    first = request.snapshot is None
    # The usual search is written as SQL straight from its conditions (once per shape: the
    # same search of another patient reuses it); the ORM builds the rest.
    where = None
    shaped = search_shapes.matches(request) if request.total != "estimate" else None
    if shaped is not None:
        ids, prepare = shaped
        qs = None
    else:
        where = search_query.conditions(request)
        ids = search_query.matches_sql(request, where)
        qs = search_query.apply(request, where) if ids is None else None
        prepare = ids is not None and search_query.one_patient(where)
    # Page, total and snapshot in one statement (search.fetch); one more row tells if more follow.
    want_rows = request.summary != "count" and request.count
    start = request.offset
    followed = followed_includes(request) if want_rows else None
    fetched = fetch(
        qs,
        ids=ids,
        prepare=prepare,
        start=start,
        stop=start + request.count + 1 if want_rows else start,
        total=request.total == "accurate",
        snapshot=first,
        by_pk=not request.sort,
        includes=followed,
        shown=request.count,
    )
    if first:
        request.snapshot = fetched.snapshot or 0
    if request.total == "estimate":
        total = estimate_count(qs if qs is not None else search_query.apply(request, where))
    else:
        total = fetched.total
    more = len(fetched.rows) > request.count
    rows = fetched.rows[: request.count]
    next_query = search_query.page_query(request, request.offset + request.count) if more else None
    previous_query = (
        search_query.page_query(request, max(0, request.offset - request.count))
        if request.offset
        else None
    )
    first_query = search_query.page_query(request, 0)
    return Page(
        rows,
        total,
        next_query,
        previous_query,
        search_query.page_query(request, request.offset) if request.offset else first_query,
        first_query,
        included=(
            fetched.included
            if fetched.included is not None
            else search_include.included(request.includes, rows)
            if request.includes
            else []
        ),
        summary=request.summary,
        elements=request.elements,
        ignored=request.ignored,
    )


def _links(url: str, page: Page) -> list[dict[str, str]]:
    links = [{"relation": "self", "url": f"{url}?{page.self_query}"}]
    links.append({"relation": "first", "url": f"{url}?{page.first_query}"})
    if page.previous_query is not None:
        links.append({"relation": "previous", "url": f"{url}?{page.previous_query}"})
    if page.next_query is not None:
        links.append({"relation": "next", "url": f"{url}?{page.next_query}"})
    return links


def searchset_bundle(base: str, url: str, page: Page) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = _links(url, page)

    def entry(row: Resource | PageRow, mode: str) -> dict[str, Any] | RawJSON:
        # "The list of elements does not apply to included resources" (search.html#elements)
        elements = page.elements if mode == "match" else []
        shaped = shape(row.content, page.summary, elements)
        full_url = f"{base}/{row.resource_type}/{row.logical_id}"
        if shaped is None:
            # The stored resource as it is, in an entry written as text: simplejson spent
            # about 3 µs on each entry as a dict, 150 µs on a page of 50 (bench/README.md).
            return raw(
                f'{{"fullUrl":{json_io.string(full_url)},"resource":{row.content},'
                f'"search":{{"mode":"{mode}"}}}}'
            )
        return {"fullUrl": full_url, "resource": shaped, "search": {"mode": mode}}

    entries = [entry(row, "match") for row in page.rows]
    entries += [entry(row, "include") for row in page.included]
    if page.ignored:
        # Lenient handling: say what was not applied (search.html#errors).
        note = "Not applied: " + ", ".join(page.ignored)
        outcome = operation_outcome([Issue("warning", "not-supported", note)])
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    if entries:  # FHIR JSON has no empty arrays (json.html): no results, no entry element
        bundle["entry"] = entries
    return bundle


def history_bundle(base: str, url: str, page: Page) -> dict[str, Any]:
    entries = []
    for v in page.rows:
        entry: dict[str, Any] = {"fullUrl": f"{base}/{v.resource_type}/{v.logical_id}"}
        if not v.deleted:
            entry["resource"] = raw(v.content)
        path = v.resource_type if v.method == "POST" else f"{v.resource_type}/{v.logical_id}"
        status = {"POST": "201 Created", "DELETE": "204 No Content"}.get(v.method, "200 OK")
        if v.method == "PUT" and (v.version_id == 1 or v.recreated):
            # An update that made the resource exist (update-as-create, or after a delete).
            status = "201 Created"
        entry["request"] = {"method": v.method, "url": path}
        entry["response"] = {
            "status": status,
            "etag": f'W/"{v.version_id}"',
            "lastModified": format_instant(v.last_updated),
        }
        entries.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history", "total": page.total}
    bundle["link"] = _links(url, page)
    if entries:
        bundle["entry"] = entries
    return bundle
