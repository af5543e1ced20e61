"""Loading FHIR data from files: transaction/batch Bundles and NDJSON (Synthea, EHR exports).

Bundles go through the same processor as ``POST [base]`` (hl7.org/fhir/R4B/http.html#transaction);
other Bundles and single resources, and each NDJSON line (hl7.org/fhir/uv/bulkdata/ export
format), are written one by one, keeping their ids (references between exported resources
point at them). An NDJSON file commits in batches, each batch together with the file's
progress, so an interrupted import resumes exactly where it stopped. Nothing is dropped:
every entry that cannot be stored is kept with its reason (``ImportRejection``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction

from . import bundles, interactions, json_io, services
from .exceptions import BadRequest, FHIRError
from .models import ImportFile, ImportRejection

SUFFIXES = (".json", ".ndjson")


@dataclass
class ImportReport:
    written: Counter = field(default_factory=Counter)  # resource type -> count
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (file, position, reason)
    skipped: list[str] = field(default_factory=list)  # files already imported
    files: int = 0


def find_files(paths: list[str]) -> list[Path]:
    """The .json and .ndjson files named, or found below the folders named, in sorted order."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(name)
    return found


def _reason(error: FHIRError) -> str:
    return "; ".join(issue.diagnostics for issue in error.issues) or error.diagnostics


def _write_one(data: Any) -> str:
    """Create or update one resource, keeping its id when it has one; its type."""
    if not isinstance(data, dict):
        raise BadRequest("not a FHIR resource (a JSON object with resourceType)")
    resource_type = str(data.get("resourceType", ""))
    if isinstance(data.get("id"), str) and data["id"]:
        services.update(resource_type, data["id"], data)
    else:
        services.create(resource_type, data)
    return resource_type


class Importer:
    def __init__(self, base: str = "urn:import", progress: Callable[[int], None] | None = None):
        self.ctx = interactions.Context(base=base, prefer_return="minimal")
        self.progress = progress or (lambda n: None)
        self.report = ImportReport()

    def run(self, paths: list[str], *, batch: int = 500) -> ImportReport:
        for path in find_files(paths):
            self.import_file(path, batch=batch)
        return self.report

    def _record(self, path: Path) -> ImportFile:
        stat = path.stat()
        record, _ = ImportFile.objects.get_or_create(
            path=str(path.resolve()), size=stat.st_size, mtime=stat.st_mtime
        )
        return record

    def _reject(self, record: ImportFile, position: str, reason: str, raw: str) -> None:
        ImportRejection.objects.create(file=record, position=position, reason=reason, raw=raw)
        record.rejected += 1
        self.report.rejected.append((record.path, position, reason))

    def import_file(self, path: Path, *, batch: int = 500) -> None:
        record = self._record(path)
        self.report.files += 1
        if record.complete:
            self.report.skipped.append(str(path))
            self.progress(record.size)
            return
        if path.suffix == ".ndjson":
            self._ndjson(path, record, batch)
        else:
            self._json(path, record)

    # --- one JSON document --------------------------------------------------------------

    def _json(self, path: Path, record: ImportFile) -> None:
        text = path.read_bytes()
        with transaction.atomic():
            try:
                data = json_io.loads(text)
                if isinstance(data, dict) and data.get("resourceType") == "Bundle":
                    self._bundle(data, record, text)
                else:
                    with transaction.atomic():
                        self.report.written[_write_one(data)] += 1
                        record.written += 1
            except FHIRError as error:
                self._reject(record, "file", _reason(error), text.decode("utf-8", "replace"))
            record.done, record.complete = 1, True
            record.save()
        self.progress(record.size)

    def _bundle(self, data: dict[str, Any], record: ImportFile, text: bytes) -> None:
        kind = data.get("type")
        if kind in ("transaction", "batch"):
            try:
                with transaction.atomic():
                    response = bundles.process(self.ctx, data)
            except FHIRError as error:
                raw = text.decode("utf-8", "replace")
                self._reject(record, "transaction", _reason(error), raw)
                return
            for index, (sent, answer) in enumerate(
                zip(data.get("entry", []), response["entry"], strict=False)
            ):
                status = answer["response"]["status"]
                resource = sent.get("resource") if isinstance(sent, dict) else None
                if status[:1] == "2":
                    rtype = resource.get("resourceType") if isinstance(resource, dict) else "?"
                    self.report.written[rtype] += 1
                    record.written += 1
                else:
                    outcome = answer["response"].get("outcome", {})
                    reason = "; ".join(i.get("diagnostics", "") for i in outcome.get("issue", []))
                    self._reject(
                        record, f"entry {index}", f"{status}: {reason}", json_io.dumps(sent)
                    )
            return
        # collection, searchset, document, …: each resource on its own.
        for index, entry in enumerate(data.get("entry") or []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            try:
                with transaction.atomic():
                    self.report.written[_write_one(resource)] += 1
                    record.written += 1
            except FHIRError as error:
                self._reject(record, f"entry {index}", _reason(error), json_io.dumps(entry))

    # --- NDJSON: resumable in batches ---------------------------------------------------

    def _lines(self, path: Path, skip: int) -> Iterator[tuple[int, bytes]]:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if number > skip:
                    yield number, line

    def _ndjson(self, path: Path, record: ImportFile, batch: int) -> None:
        pending: list[tuple[int, bytes]] = []
        for item in self._lines(path, record.done):
            pending.append(item)
            if len(pending) >= batch:
                self._ndjson_batch(record, pending)
                pending = []
        self._ndjson_batch(record, pending, last=True)

    def _ndjson_batch(
        self, record: ImportFile, lines: list[tuple[int, bytes]], last: bool = False
    ) -> None:
        size = 0
        with transaction.atomic():
            for number, line in lines:
                size += len(line)
                if not line.strip():
                    continue
                try:
                    with transaction.atomic():
                        self.report.written[_write_one(json_io.loads(line))] += 1
                        record.written += 1
                except FHIRError as error:
                    self._reject(
                        record, f"line {number}", _reason(error), line.decode("utf-8", "replace")
                    )
            if lines:
                record.done = lines[-1][0]
            record.complete = last
            record.save()
        self.progress(size)
