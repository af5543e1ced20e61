"""``manage.py import_dicom DIR…``: store every DICOM file under the folders (recursively).

Files go through ``imaging.services.store_files`` in batches, as an upload does: each is
checked, kept whole under its hash, recorded, and its study's ImagingStudy written
(https://hl7.org/fhir/R4B/imagingstudy.html). A progress bar counts files; the summary gives the
stored, duplicate (already held) and failed files, each failure with its reason, and the studies
left in quarantine. The exit status is 1 when any file failed, so a script notices.

A DICOMDIR (the index of a DICOM medium, PS3.10 8.6; Media Storage Directory SOP Class) is skipped,
not failed: the files it lists are found by the walk itself.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from imaging.dicomfile import DICOMDIR_REASON
from imaging.models import DicomStudy
from imaging.services import StoreResult, store_files


def walk(roots: list[str]) -> Iterator[Path]:
    for root in roots:
        path = Path(root)
        if not path.is_dir():
            # A file, or something that is neither (a FIFO, a device): _read says which.
            yield path
            continue
        for folder, dirs, names in os.walk(path):
            dirs.sort()
            for name in sorted(names):
                yield Path(folder) / name


def batches(files: list[Path], count: int, size: int) -> Iterator[list[Path]]:
    """The files in runs of at most ``count`` files and ``size`` bytes (at least one file)."""
    chunk: list[Path] = []
    total = 0
    for path in files:
        try:
            length = path.stat().st_size
        except OSError:
            length = 0
        if chunk and (len(chunk) >= count or total + length > size):
            yield chunk
            chunk, total = [], 0
        chunk.append(path)
        total += length
    if chunk:
        yield chunk


class Command(BaseCommand):
    help = "Store the DICOM files found under the given folders (recursively)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", metavar="DIR")
        parser.add_argument(
            "--batch", type=int, default=200, help="files per store_files call (at most)"
        )
        parser.add_argument(
            "--batch-mb", type=int, default=64, help="megabytes of files per call (at most)"
        )
        parser.add_argument("--by", default="import_dicom", help="recorded as who sent the files")

    def handle(
        self, *args, paths: list[str], batch: int, batch_mb: int, by: str, **options
    ) -> None:
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            raise CommandError(f"No such file or folder: {', '.join(missing)}")
        files = list(walk(paths))
        total = StoreResult()
        with tqdm(total=len(files), unit="file", disable=None, file=self.stderr) as bar:
            for chunk in batches(files, max(batch, 1), max(batch_mb, 1) << 20):
                result = store_files(_read(chunk), by=by)
                total.stored += result.stored
                total.duplicates += result.duplicates
                total.failed += result.failed
                total.conflicts += result.conflicts
                bar.update(len(chunk))
        skipped = [name for name, reason in total.failed if reason == DICOMDIR_REASON]
        total.failed = [
            (name, reason) for name, reason in total.failed if reason != DICOMDIR_REASON
        ]
        for name in skipped:
            self.stdout.write(f"skipped (a DICOMDIR index): {name}")
        for name, reason in total.failed:
            self.stdout.write(f"FAILED {name}: {reason}")
        studies = {i.study_id for i in total.stored}
        quarantined = DicomStudy.objects.filter(pk__in=studies, patient_id="").count()
        self.stdout.write(
            f"{len(total.stored)} stored, {len(total.duplicates)} duplicate(s),"
            f" {len(total.failed)} failed, {len(skipped)} DICOMDIR skipped, of {len(files)} file(s);"
            f" {len(studies)} study(ies) received instances, {quarantined} in quarantine"
        )
        if total.failed:
            raise CommandError(f"{len(total.failed)} file(s) failed", returncode=1)


def _read_regular(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file. Opened without blocking and checked on the
    open descriptor: a FIFO (named pipe) found in the folder would otherwise block the import
    until something wrote to it, and a device file would be read as if it were DICOM."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket or device"
            raise OSError(f"not a regular file ({kind})")
        return file.read()


def _read(paths: list[Path]) -> Iterator[tuple[str, bytes | _Unreadable]]:
    for path in paths:
        try:
            data = _read_regular(path)
        except OSError as exc:
            # store_files reports a file it cannot read; give it something that says why.
            yield str(path), _Unreadable(exc)
            continue
        yield str(path), data


class _Unreadable:
    """A file that could not be opened: reading it raises the original error."""

    def __init__(self, error: OSError) -> None:
        self.error = error

    def read(self) -> bytes:
        raise self.error
