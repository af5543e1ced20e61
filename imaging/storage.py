"""Where DICOM files are kept: whole, content-addressed by SHA-256, through Django's storage API.

The storage is ``STORAGES["dicom"]`` (``settings.py``): by default ``AtomicFileSystemStorage``
under ``DICOM_STORAGE_DIR`` (``$DTH_VAR_DIR/dicom``). A file's name is its SHA-256
(``ab/cd/abcd….dcm``), so the same bytes are kept once, and a name says what its content must
be: a file found under its name is checked against its hash before it is trusted, and one that
does not match (a disk error, a copy cut short outside this code) is written again.

"Never partly written": ``AtomicFileSystemStorage`` writes to a temporary file in the same
directory, flushes it to disk and renames it into place, so a reader sees the whole file or
nothing. Another backend configured in ``STORAGES["dicom"]`` (an object store) writes each object
whole by its own semantics; there the size read back is checked after the write.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, storages

if TYPE_CHECKING:
    from .models import DicomInstance


class StorageFailed(Exception):
    """The file could not be written whole; nothing refers to what was written."""


class AtomicFileSystemStorage(FileSystemStorage):
    """FileSystemStorage whose writes are all-or-nothing: temporary file, fsync, rename."""

    def _save(self, name: str, content) -> str:
        full_path = self.path(name)
        directory = os.path.dirname(full_path)
        os.makedirs(directory, exist_ok=True)
        fd, temp_path = tempfile.mkstemp(dir=directory, prefix=".incoming-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                if hasattr(content, "seek"):
                    content.seek(0)
                for chunk in content.chunks():
                    out.write(chunk if isinstance(chunk, bytes) else chunk.encode())
                out.flush()
                os.fsync(out.fileno())
            if self.file_permissions_mode is not None:
                os.chmod(temp_path, self.file_permissions_mode)
            else:
                os.chmod(temp_path, 0o644)
            # The name is the content's hash: a file already there holds the same bytes (the
            # caller checked it), so replacing it is harmless and keeps the write atomic.
            os.replace(temp_path, full_path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_path)
            raise
        return os.path.relpath(full_path, self.location).replace("\\", "/")

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        # Content-addressed: the same name is the same content, written over atomically.
        return name


def dicom_storage() -> Storage:
    return storages["dicom"]


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def name_for(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}.dcm"


@dataclass(frozen=True)
class Stored:
    name: str
    sha256: str
    size: int


def _hash_stored(storage: Storage, name: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with storage.open(name, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except (FileNotFoundError, OSError):
        return None
    return digest.hexdigest()


def keep(data: bytes, sha256: str | None = None) -> Stored:
    """Keep ``data`` under its hash (once); return where. Raises ``StorageFailed``."""
    storage = dicom_storage()
    sha256 = sha256 or sha256_of(data)
    name = name_for(sha256)
    if storage.exists(name) and _hash_stored(storage, name) == sha256:
        return Stored(name, sha256, len(data))
    try:
        saved = storage.save(name, ContentFile(data))
    except OSError as exc:
        raise StorageFailed(f"the DICOM storage could not write the file: {exc}") from exc
    if saved != name:
        # A backend that renames on collision: the content is the same, keep one copy.
        storage.delete(saved)
    if storage.size(name) != len(data):
        raise StorageFailed(f"the DICOM storage kept {name} with the wrong size")
    return Stored(name, sha256, len(data))


def open_instance(instance: DicomInstance) -> IO[bytes]:
    """The stored file of an instance, opened for reading in binary (the caller closes it)."""
    return dicom_storage().open(instance.storage_name, "rb")


def read_instance(instance: DicomInstance) -> bytes:
    with open_instance(instance) as handle:
        return handle.read()
