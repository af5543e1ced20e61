"""The write paths of the FHIR store: create, update, patch, delete and their conditional forms.

Each write validates the resource, then in one database transaction takes a row lock on the
current version, checks preconditions (``If-Match``), appends a ``ResourceVersion``, updates the
current ``Resource`` row and rewrites the search-index rows. Nothing is half-written: any error
rolls the whole write back. See hl7.org/fhir/R4B/http.html (create, update, patch, delete) and
hl7.org/fhir/R4B/http.html#concurrency for version-aware updates.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonpointer
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from . import json_io, prepared
from .exceptions import BadRequest, Gone, NotFound, PreconditionFailed, UnprocessableEntity
from .indexing import index_rows, insert_ctes, write_indexes
from .models import Resource, ResourceVersion
from .search.dates import format_instant
from .search.extract import IndexRows
from .search.query import match_ids
from .signals import resource_committed
from .validation import check_id, check_resource_type, validate_resource


@dataclass
class WriteOutcome:
    """What a write did: the current row afterwards and whether the write made it exist."""

    resource: Resource
    created: bool = False
    # False when nothing was written: a conditional create that found its match, or a delete of
    # something already gone.
    changed: bool = True


def new_id() -> str:
    return str(uuid.uuid4())


def parse_etag(value: str | None) -> int | None:
    """The version in an ``If-Match`` value: ``W/"3"``, ``"3"`` or ``3``."""
    if value is None:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise BadRequest(f"If-Match '{value}' is not a version ETag such as W/\"3\"")
    return int(text)


def parse_etags(value: str, header: str = "If-Match") -> set[int] | None:
    """The versions an ``If-Match``/``If-None-Match`` lists; None for ``*`` (any version).

    RFC 9110 §13.1.1-2: the value is ``*`` or a comma-separated list of entity tags.
    """
    text = value.strip()
    if text == "*":
        return None
    versions: set[int] = set()
    for part in text.split(","):
        try:
            version = parse_etag(part)
        except BadRequest:
            raise BadRequest(
                f"{header} '{value}' is not * or a list of version ETags such as W/\"3\""
            ) from None
        if version is not None:
            versions.add(version)
    if not versions:
        raise BadRequest(f"{header} '{value}' is not * or a list of version ETags such as W/\"3\"")
    return versions


def _content(resource_type: str, logical_id: str, data: dict[str, Any], version: int, now) -> str:
    """The JSON to store: the client's resource with the server's id and meta (kept in order)."""
    meta = data.get("meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta["versionId"] = str(version)
    meta["lastUpdated"] = format_instant(now)
    body: dict[str, Any] = {"resourceType": resource_type, "id": logical_id, "meta": meta}
    for key, value in data.items():
        if key not in body:
            body[key] = value
    return json_io.dumps(body)


def _announce(row: Resource, index: IndexRows | None) -> None:
    rt, lid, vid, deleted = row.resource_type, row.logical_id, row.version_id, row.deleted
    transaction.on_commit(
        lambda: resource_committed.send(
            sender=Resource,
            resource_type=rt,
            logical_id=lid,
            version_id=vid,
            deleted=deleted,
            index=index,
        )
    )


def _store(
    current: Resource | None,
    resource_type: str,
    logical_id: str,
    data: dict[str, Any] | None,
    method: str,
) -> Resource:
    """Append a version (``data`` None: a delete tombstone) and make it current. In a transaction."""
    now = timezone.now()
    version = 1 if current is None else current.version_id + 1
    content = "" if data is None else _content(resource_type, logical_id, data, version, now)
    # The index rows are made once: written with the version, and sent with resource_committed
    # so that receivers need not read them back.
    index = None if data is None else index_rows(resource_type, logical_id, data)
    if current is None and connection.vendor == "postgresql":
        current = _insert_new(resource_type, logical_id, now, data is None, content, method, index)
        _announce(current, index)
        return current
    if current is None:
        current = Resource.objects.create(
            resource_type=resource_type,
            logical_id=logical_id,
            version_id=version,
            last_updated=now,
            deleted=data is None,
            content=content,
        )
        fresh = True
    else:
        current.version_id = version
        current.last_updated = now
        current.deleted = data is None
        current.content = content
        current.save(update_fields=["version_id", "last_updated", "deleted", "content"])
        fresh = False
    ResourceVersion.objects.create(
        resource=current,
        resource_type=resource_type,
        logical_id=logical_id,
        version_id=version,
        last_updated=now,
        deleted=data is None,
        method=method,
        content=content,
    )
    write_indexes(current, index, fresh=fresh)
    _announce(current, index)
    return current


# A new resource, its first version and its index rows in one statement (PostgreSQL): the
# same rows as the ORM path of _store, in one round trip instead of one per table.
_INSERT_NEW = (
    "WITH r AS (INSERT INTO fhir_resource"
    " (resource_type, logical_id, version_id, last_updated, deleted, content)"
    " VALUES (%s, %s, 1, %s, %s, %s) RETURNING *),"
    " v AS (INSERT INTO fhir_resource_version"
    " (resource_id, resource_type, logical_id, version_id, last_updated, deleted, method, content)"
    " SELECT id, resource_type, logical_id, version_id, last_updated, deleted, %s, content FROM r)"
)


def _insert_new(
    resource_type: str,
    logical_id: str,
    now,
    deleted: bool,
    content: str,
    method: str,
    index: IndexRows | None,
) -> Resource:
    sql = _INSERT_NEW
    params: list[Any] = [resource_type, logical_id, now, deleted, content, method]
    if index is not None:
        ctes, index_params = insert_ctes(index)
        if ctes:
            sql += ", " + ", ".join(ctes)
        params += index_params
    with connection.cursor() as cursor:
        # Prepared once per connection: planning this CTE again was most of PostgreSQL's CPU.
        prepared.execute(cursor, sql + " SELECT id FROM r", params)
        pk = cursor.fetchone()[0]
    return Resource.from_db(
        connection.alias, None, [pk, resource_type, logical_id, 1, now, deleted, content]
    )


def _locked(resource_type: str, logical_id: str) -> Resource | None:
    return (
        Resource.objects.select_for_update()
        .filter(resource_type=resource_type, logical_id=logical_id)
        .first()
    )


def _check_if_match(current: Resource | None, if_match: str | None) -> None:
    """``If-Match`` on a write (http.html#concurrency, RFC 9110 §13.1.1).

    ``*`` means "the resource exists": the write goes ahead on any current version and fails
    with 412 when there is none (never created, or deleted), so an update never creates.
    A list of ETags must name the current version.
    """
    if if_match is None:
        return
    wanted = parse_etags(if_match)
    if current is None or current.deleted:
        raise PreconditionFailed(f"If-Match {if_match}: the resource does not exist")
    if wanted is not None and current.version_id not in wanted:
        raise PreconditionFailed(
            f'If-Match {if_match} does not match the current version W/"{current.version_id}";'
            " read the resource again and reapply your change"
        )


def _check_if_none_match(current: Resource | None, if_none_match: str | None) -> None:
    """``If-None-Match`` on an update (RFC 9110 §13.1.2): ``*`` makes a PUT create-only.

    ``*`` fails with 412 when the resource exists (a deleted one does not); a list of ETags
    fails when it names the current version.
    """
    if if_none_match is None:
        return
    unwanted = parse_etags(if_none_match, "If-None-Match")
    if current is None or current.deleted:
        return
    if unwanted is None:
        raise PreconditionFailed(
            f"If-None-Match *: {current.resource_type}/{current.logical_id} already exists"
            f' (version W/"{current.version_id}")'
        )
    if current.version_id in unwanted:
        raise PreconditionFailed(
            f'If-None-Match {if_none_match}: the current version is W/"{current.version_id}"'
        )


def lock_condition(resource_type: str, query: str) -> None:
    """Serialise conditional writes on the same condition so two cannot both create.

    On PostgreSQL an advisory lock held to the end of the transaction; SQLite already runs one
    write transaction at a time (settings use BEGIN IMMEDIATE).
    """
    if connection.vendor == "postgresql":
        key = zlib.crc32(f"{resource_type}?{query}".encode())
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [4242, key - 2**31])


def single_match(resource_type: str, query: str, action: str) -> str | None:
    ids = match_ids(resource_type, query, limit=2)
    if len(ids) > 1:
        raise PreconditionFailed(
            f"Conditional {action}: more than one {resource_type} matches '{query}'"
        )
    return ids[0] if ids else None


def create(
    resource_type: str,
    data: Any,
    *,
    if_none_exist: str | None = None,
    logical_id: str | None = None,
) -> WriteOutcome:
    """POST [base]/[type] (hl7.org/fhir/R4B/http.html#create); ``If-None-Exist`` makes it conditional.

    The server assigns the id: an id in the body is ignored, as the specification says.
    ``logical_id`` is for transactions, which choose ids before they write (to rewrite
    ``urn:uuid`` references).
    """
    check_resource_type(resource_type)
    validate_resource(data, resource_type)
    if not if_none_exist and connection.vendor == "postgresql" and not connection.in_atomic_block:
        # On PostgreSQL a new resource is one statement (_insert_new): in autocommit it is a
        # transaction of its own, all or nothing, without the BEGIN and COMMIT round trips.
        row = _store(None, resource_type, logical_id or new_id(), data, "POST")
        return WriteOutcome(row, created=True)
    with transaction.atomic():
        if if_none_exist:
            lock_condition(resource_type, if_none_exist)
            found = single_match(resource_type, if_none_exist, "create")
            if found is not None:
                existing = Resource.objects.get(resource_type=resource_type, logical_id=found)
                return WriteOutcome(existing, created=False, changed=False)
        row = _store(None, resource_type, logical_id or new_id(), data, "POST")
    return WriteOutcome(row, created=True)


def update(
    resource_type: str,
    logical_id: str,
    data: Any,
    *,
    if_match: str | None = None,
    if_none_match: str | None = None,
) -> WriteOutcome:
    """PUT [base]/[type]/[id] (hl7.org/fhir/R4B/http.html#update), creating when absent.

    ``If-None-Match: *`` makes it create-only (412 when the resource exists).
    """
    check_resource_type(resource_type)
    check_id(logical_id)
    validate_resource(data, resource_type)
    body_id = data.get("id")
    if body_id != logical_id:
        raise BadRequest(
            f"The resource id '{body_id}' does not match the id '{logical_id}' in the URL"
            if body_id
            else "An update needs the resource's id in the body, the same as in the URL"
        )
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                current = _locked(resource_type, logical_id)
                _check_if_match(current, if_match)
                _check_if_none_match(current, if_none_match)
                created = current is None or current.deleted
                row = _store(current, resource_type, logical_id, data, "PUT")
            return WriteOutcome(row, created=created)
        except IntegrityError:
            # Two clients created the same id at once: the loser retries as an update.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def conditional_update(
    resource_type: str,
    query: str,
    data: Any,
    *,
    if_match: str | None = None,
    if_none_match: str | None = None,
) -> WriteOutcome:
    """PUT [base]/[type]?[search] (hl7.org/fhir/R4B/http.html#cond-update)."""
    check_resource_type(resource_type)
    if not isinstance(data, dict):
        raise BadRequest("A FHIR resource must be a JSON object", code="structure")
    with transaction.atomic():
        lock_condition(resource_type, query)
        found = single_match(resource_type, query, "update")
        if found is None:
            if data.get("id"):
                return update(
                    resource_type, data["id"], data, if_match=if_match, if_none_match=if_none_match
                )
            if if_match is not None:
                _check_if_match(None, if_match)
            return create(resource_type, data)
        if data.get("id") not in (None, found):
            raise BadRequest(
                f"The body's id '{data['id']}' is not the id '{found}' of the resource that"
                f" matches '{query}'"
            )
        return update(
            resource_type,
            found,
            {**data, "id": found},
            if_match=if_match,
            if_none_match=if_none_match,
        )


def _apply_patch(current: Resource, operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise BadRequest("A JSON Patch body is an array of operations (RFC 6902)")
    document = json_io.loads(current.content)
    try:
        patched = jsonpatch.JsonPatch(operations).apply(document)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise UnprocessableEntity(f"A JSON Patch test failed: {exc}") from None
    except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException) as exc:
        raise UnprocessableEntity(f"The JSON Patch cannot be applied: {exc}") from None
    except (jsonpatch.InvalidJsonPatch, TypeError, KeyError, AttributeError) as exc:
        raise BadRequest(f"The JSON Patch is not valid: {exc}") from None
    if not isinstance(patched, dict):
        raise UnprocessableEntity("The patch must leave a resource (a JSON object)")
    if (
        patched.get("resourceType") != current.resource_type
        or patched.get("id") != current.logical_id
    ):
        raise UnprocessableEntity("A patch may not change the resource's type or id")
    return patched


def patch(
    resource_type: str, logical_id: str, operations: Any, *, if_match: str | None = None
) -> WriteOutcome:
    """PATCH [base]/[type]/[id] with JSON Patch (hl7.org/fhir/R4B/http.html#patch)."""
    check_resource_type(resource_type)
    check_id(logical_id)
    with transaction.atomic():
        current = _locked(resource_type, logical_id)
        if current is None:
            raise NotFound(f"{resource_type}/{logical_id} is not known")
        if current.deleted:
            raise Gone(f"{resource_type}/{logical_id} was deleted")
        _check_if_match(current, if_match)
        patched = _apply_patch(current, operations)
        validate_resource(patched, resource_type)
        row = _store(current, resource_type, logical_id, patched, "PATCH")
    return WriteOutcome(row)


def conditional_patch(
    resource_type: str, query: str, operations: Any, *, if_match: str | None = None
) -> WriteOutcome:
    """PATCH [base]/[type]?[search] (hl7.org/fhir/R4B/http.html#patch)."""
    check_resource_type(resource_type)
    with transaction.atomic():
        found = single_match(resource_type, query, "patch")
        if found is None:
            raise NotFound(f"No {resource_type} matches '{query}'")
        return patch(resource_type, found, operations, if_match=if_match)


def delete(
    resource_type: str, logical_id: str, *, if_match: str | None = None
) -> WriteOutcome | None:
    """DELETE [base]/[type]/[id] (hl7.org/fhir/R4B/http.html#delete).

    Appends a tombstone version; reads then answer 410 Gone. Deleting something that does not
    exist, or is already deleted, changes nothing and succeeds, as the specification says.
    Returns None when there was nothing to delete.
    """
    check_resource_type(resource_type)
    check_id(logical_id)
    with transaction.atomic():
        current = _locked(resource_type, logical_id)
        _check_if_match(current, if_match)
        if current is None or current.deleted:
            return None
        row = _store(current, resource_type, logical_id, None, "DELETE")
    return WriteOutcome(row)


def conditional_delete(resource_type: str, query: str) -> WriteOutcome | None:
    """DELETE [base]/[type]?[search] (hl7.org/fhir/R4B/http.html#cdelete); one match at most."""
    check_resource_type(resource_type)
    with transaction.atomic():
        lock_condition(resource_type, query)
        found = single_match(resource_type, query, "delete")
        if found is None:
            return None
        return delete(resource_type, found)
