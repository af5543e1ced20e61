"""Writing many new resources at once: the fast path for bulk loads, device ingest and imports.

``create_many`` stores a batch of new resources in one transaction and leaves exactly the rows
the normal write path (``services.create``) would leave for each of them: the current
``Resource`` row, version 1 in ``ResourceVersion`` (method ``POST``) and every search-index row
from ``search.extract.extract``. The content is built by ``services._content``, the same
function every write uses, so only the ``lastUpdated`` instant differs (one per batch).

On PostgreSQL the rows go in with ``COPY … FROM STDIN`` (text format): the ``Resource`` primary
keys are reserved first from the table's sequence with one ``nextval`` query, so the version
and index rows can name their resource without a round trip per row. On SQLite the ORM's
``bulk_create`` does the same, more slowly.

After the transaction commits, ``resource_committed`` is sent once per resource, as after any
write (with ``bulk=True``), then ``resources_committed`` once for the whole batch; a receiver
needs only one of the two (see ``signals``).

Only new resources: ids are assigned here (or taken from the data with ``keep_ids=True``, for
imports whose references already name them) and must not exist yet. An update of an existing
resource goes through ``services``.
"""

from __future__ import annotations

import gc
import io
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.utils import timezone
from simplejson import RawJSON
from simplejson.encoder import encode_basestring

from . import json_io
from .exceptions import Conflict, FHIRError, Issue, UnprocessableEntity
from .indexing import index_rows
from .models import INDEX_MODELS, Resource, ResourceVersion
from .search.dates import format_instant
from .search.extract import COLUMNS, IndexRows
from .services import _content, new_id
from .signals import resource_committed, resources_committed
from .validation import check_id, check_resource_type, validate_resource

# Rows per bulk_create statement on SQLite (its limit on bound variables is 32766).
SQLITE_BATCH = 500
# Characters psycopg2 reads from a COPY buffer at a time.
COPY_CHUNK = 1 << 20
# Index columns before the table's own (search.extract.COLUMNS).
INDEX_HEAD = ("resource_id", "resource_type", "param", "patient")
RESOURCE_COLUMNS = (
    "id",
    "resource_type",
    "logical_id",
    "version_id",
    "last_updated",
    "deleted",
    "content",
)
VERSION_COLUMNS = (
    "resource_id",
    "resource_type",
    "logical_id",
    "version_id",
    "last_updated",
    "deleted",
    "method",
    "content",
)


class Written(NamedTuple):
    """One stored resource: its type, id, primary key and (always 1) version."""

    resource_type: str
    logical_id: str
    pk: int
    version_id: int = 1


class BulkInvalid(UnprocessableEntity):
    """Some entries of a batch are not valid resources; nothing of the batch was written.

    ``rejected`` holds (position in the batch, the entry's error) for every invalid entry.
    """

    def __init__(self, rejected: list[tuple[int, FHIRError]]) -> None:
        issues = []
        for position, error in rejected:
            for issue in error.issues:
                issues.append(
                    Issue(
                        issue.severity,
                        issue.code,
                        f"entry {position}: {issue.diagnostics}",
                        issue.expression,
                    )
                )
        super().__init__(
            f"{len(rejected)} of the resources are not valid; none was written", issues=issues
        )
        self.rejected = rejected


def _items(items: Iterable[Any]) -> list[tuple[str, dict[str, Any]]]:
    """Entries as (resource_type, data): each given as such a pair or as the resource itself."""
    out = []
    for item in items:
        if isinstance(item, dict):
            out.append((item.get("resourceType"), item))
        else:
            resource_type, data = item
            out.append((resource_type, data))
    return out


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a batch is built and written.

    A batch allocates tens of thousands of containers that live until it is written (the
    resources' dicts, their index rows), and every 700 allocations the collector would walk
    the young ones, now and then the whole heap: ~15 % of the ingest's CPU on 500-reading
    batches. Nothing of a batch is cyclic garbage, so the collector waits until the end. It is
    process-wide: a thread that finds it already off leaves it to the thread that turned it
    off, which turns it back on, so it is never left off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def check(
    items: Sequence[tuple[str, dict[str, Any]]], *, validate: bool = True, keep_ids: bool = False
) -> list[tuple[int, FHIRError]]:
    """The entries that cannot be written, with why (validation as ``services.create`` does)."""
    rejected: list[tuple[int, FHIRError]] = []
    for position, (resource_type, data) in enumerate(items):
        try:
            check_resource_type(resource_type)
            if validate:
                validate_resource(data, resource_type)
            elif not isinstance(data, dict) or data.get("resourceType") != resource_type:
                raise UnprocessableEntity(f"entry is not a {resource_type} resource")
            if keep_ids:
                check_id(data.get("id") if isinstance(data.get("id"), str) else "")
        except FHIRError as exc:
            rejected.append((position, exc))
    return rejected


def create_many(
    items: Iterable[Any],
    *,
    validate: bool = True,
    keep_ids: bool = False,
    indexes: Sequence[IndexRows] | None = None,
) -> list[Written]:
    """Store new resources in one transaction; the same rows as ``services.create`` for each.

    ``items``: resources (dicts with ``resourceType``) or (resource_type, data) pairs.
    ``validate=False`` skips the ``fhir.resources`` validation, for data known to be valid
    (it is most of the CPU of a write); ``keep_ids=True`` stores each resource under the id in
    its data instead of a new one. ``indexes``: the index rows of each entry, in order, when
    the caller built them by construction (device ingest: ``devices.indexrows``, tested equal
    to ``extract``'s); None extracts them here. Raises ``BulkInvalid`` (422) listing every
    invalid entry, or ``Conflict`` (409) when a kept id exists already, and writes nothing then.
    """
    with gc_paused():
        entries = _items(items)
        rejected = check(entries, validate=validate, keep_ids=keep_ids)
        if rejected:
            raise BulkInvalid(rejected)
        if not entries:
            return []
        ids = [data["id"] if keep_ids else new_id() for _rt, data in entries]
        now = timezone.now()
        contents = _contents(entries, ids, now)
        if indexes is None:
            indexes = [
                index_rows(resource_type, lid, data)
                for (resource_type, data), lid in zip(entries, ids, strict=True)
            ]
        elif len(indexes) != len(entries):
            raise ValueError(f"{len(indexes)} index rows for {len(entries)} resources")
        types = [resource_type for resource_type, _data in entries]
        with transaction.atomic():
            if keep_ids:
                _refuse_existing(types, ids)
            if connection.vendor == "postgresql":
                pks = _copy_all(types, ids, contents, indexes, now)
            else:
                pks = _orm_all(types, ids, contents, indexes, now)
            written = [Written(t, i, pk) for t, i, pk in zip(types, ids, pks, strict=True)]
            transaction.on_commit(lambda: _announce(written))
        return written


def _contents(entries: list[tuple[str, dict[str, Any]]], ids: list[str], now) -> list[str]:
    """The stored JSON of each entry, exactly as ``services._content`` writes it.

    Resources made from templates share parts: every reading of a type has the same
    ``category`` and ``code`` objects, every reading judged alike the same ``interpretation``
    and ``referenceRange`` (``devices.readings``). A top-level value that is the same object in
    two or more entries of the batch is serialised once and passed on as ``RawJSON``, which
    the encoder copies as it is, so the text is the same as serialising it each time. The
    entries are alive for the whole call, so an ``id`` names one object throughout.

    A resource that comes without ``meta`` gets the batch's (version 1, its instant): its text
    is the head ``_content`` would write (resourceType, id, meta) followed by the rest of the
    resource, serialised without them; one with a ``meta`` of its own goes through
    ``_content``. ``tests/test_bulk_write.py`` compares both with the normal write path's.
    """
    seen: set[int] = set()
    shared: dict[int, Any] = {}
    for _resource_type, data in entries:
        for name, value in data.items():
            # meta is read and extended by _content, so it is never passed on pre-rendered.
            if (type(value) is dict or type(value) is list) and name != "meta":
                key = id(value)
                if key in seen:
                    shared[key] = value
                else:
                    seen.add(key)
    get = {key: RawJSON(json_io.dumps(value)) for key, value in shared.items()}.get
    meta = json_io.dumps({"versionId": "1", "lastUpdated": format_instant(now)})
    heads: dict[str, str] = {}
    out = []
    for (resource_type, data), lid in zip(entries, ids, strict=True):
        if "meta" in data:
            parts = {k: v if k == "meta" else get(id(v), v) for k, v in data.items()}
            out.append(_content(resource_type, lid, parts, 1, now))
            continue
        head = heads.get(resource_type)
        if head is None:
            head = heads[resource_type] = '{"resourceType":' + json_io.dumps(resource_type)
        rest = json_io.dumps(
            {k: get(id(v), v) for k, v in data.items() if k != "resourceType" and k != "id"}
        )
        tail = "}" if rest == "{}" else "," + rest[1:]
        # encode_basestring: how the encoder writes a string (json_io.dumps, ensure_ascii off).
        out.append(f'{head},"id":{encode_basestring(lid)},"meta":{meta}{tail}')
    return out


def _announce(written: list[Written]) -> None:
    for w in written:
        resource_committed.send(
            sender=Resource,
            resource_type=w.resource_type,
            logical_id=w.logical_id,
            version_id=w.version_id,
            deleted=False,
            bulk=True,
        )
    resources_committed.send(sender=Resource, resources=written)


def _refuse_existing(types: list[str], ids: list[str]) -> None:
    seen: set[tuple[str, str]] = set()
    for key in zip(types, ids, strict=True):
        if key in seen:
            raise Conflict(f"{key[0]}/{key[1]} appears twice in the batch")
        seen.add(key)
    by_type: dict[str, list[str]] = {}
    for resource_type, lid in seen:
        by_type.setdefault(resource_type, []).append(lid)
    for resource_type, lids in by_type.items():
        for start in range(0, len(lids), SQLITE_BATCH):
            found = Resource.objects.filter(
                resource_type=resource_type, logical_id__in=lids[start : start + SQLITE_BATCH]
            ).values_list("logical_id", flat=True)[:1]
            if found:
                raise Conflict(
                    f"{resource_type}/{found[0]} exists already: bulk writes only create"
                )


# --- SQLite (and any other database): the ORM ---------------------------------------------------


def _orm_all(
    types: list[str], ids: list[str], contents: list[str], indexes: list[IndexRows], now
) -> list[int]:
    resources = [
        Resource(
            resource_type=t, logical_id=i, version_id=1, last_updated=now, deleted=False, content=c
        )
        for t, i, c in zip(types, ids, contents, strict=True)
    ]
    if connection.features.can_return_rows_from_bulk_insert:
        Resource.objects.bulk_create(resources, batch_size=SQLITE_BATCH)
    else:  # pragma: no cover - SQLite before 3.35
        for resource in resources:
            resource.save(force_insert=True)
    ResourceVersion.objects.bulk_create(
        [
            ResourceVersion(
                resource=r,
                resource_type=r.resource_type,
                logical_id=r.logical_id,
                version_id=1,
                last_updated=now,
                deleted=False,
                method="POST",
                content=r.content,
            )
            for r in resources
        ],
        batch_size=SQLITE_BATCH,
    )
    by_model: dict[type, list] = {}
    for resource, rows in zip(resources, indexes, strict=True):
        for model, objects in rows.models(resource, resource.resource_type).items():
            by_model.setdefault(model, []).extend(objects)
    for model, objects in by_model.items():
        model.objects.bulk_create(objects, batch_size=SQLITE_BATCH)
    return [r.pk for r in resources]


# --- PostgreSQL: COPY --------------------------------------------------------------------------

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _field(value: Any) -> str:
    """One value in COPY's text format (what psycopg2 would send for the ORM's parameter)."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        # Four substring tests are ~50 times faster than a regex search on a resource's JSON.
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return value.translate(_ESCAPES)
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _line(values: Iterable[Any]) -> str:
    return "\t".join(map(_field, values)) + "\n"


def _copy(cursor, table: str, columns: Sequence[str], buffer: io.StringIO) -> None:
    buffer.seek(0)
    # psycopg2 reads the buffer in chunks of ``size`` characters, each a Python call and an
    # encode: 1 MB chunks instead of 8 KB ones.
    cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer, size=COPY_CHUNK)


_VERSIONS_SQL = (
    f"INSERT INTO {ResourceVersion._meta.db_table} ({', '.join(VERSION_COLUMNS)})"
    " SELECT id, resource_type, logical_id, version_id, last_updated, deleted, 'POST', content"
    f" FROM {Resource._meta.db_table} WHERE id = ANY(%s) ORDER BY id"
)


def _reserve_pks(cursor, n: int) -> list[int]:
    """``n`` primary keys for new ``Resource`` rows, from the table's own sequence."""
    table = Resource._meta.db_table
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
        [table, n],
    )
    return [row[0] for row in cursor.fetchall()]


def _copy_all(
    types: list[str], ids: list[str], contents: list[str], indexes: list[IndexRows], now
) -> list[int]:
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor  # psycopg2's own cursor, for copy_expert
        pks = _reserve_pks(cursor, len(types))
        stamp = now.isoformat()
        resources = io.StringIO()
        for pk, t, i, c in zip(pks, types, ids, contents, strict=True):
            resources.write(f"{pk}\t{_field(t)}\t{_field(i)}\t1\t{stamp}\tf\t{_field(c)}\n")
        _copy(cursor, Resource._meta.db_table, RESOURCE_COLUMNS, resources)
        # Version 1 of each is a copy of the row just written: made by PostgreSQL from it, the
        # content is neither rendered nor sent nor parsed a second time (in pk order, the
        # order the COPY gave).
        cursor.execute(_VERSIONS_SQL, [pks])
        lines: dict[type, list[str]] = {model: [] for model in INDEX_MODELS}
        # The text of a row less its resource id and type: many rows of a batch are equal
        # (the category, code and status rows of every reading of a type; a patient's
        # references; common values), so each distinct row of each patient is rendered once.
        # Equal values of one column render alike for the database (1 and 1.0, one instant in
        # two time zones).
        tails: dict[str | None, dict[tuple, str]] = {}
        for pk, resource_type, rows in zip(pks, types, indexes, strict=True):
            head = f"{pk}\t{_field(resource_type)}\t"
            texts = tails.get(rows.patient)
            if texts is None:
                texts = tails[rows.patient] = {}
            patient = "\t" + _field(rows.patient) + "\t"
            for model, table_rows in rows.rows.items():
                append = lines[model].append
                for row in table_rows:
                    tail = texts.get(row)
                    if tail is None:
                        tail = texts[row] = (
                            _field(row[0]) + patient + "\t".join(map(_field, row[1:])) + "\n"
                        )
                    append(head + tail)
        for model, model_lines in lines.items():
            if model_lines:
                buffer = io.StringIO("".join(model_lines))
                _copy(cursor, model._meta.db_table, (*INDEX_HEAD, *COLUMNS[model]), buffer)
    return pks
