"""The PNG previews of stored instances, drawn once and kept, keyed by the file's sha256.

A preview depends only on the file's bytes, the frame and the size asked for, so it is stored
under ``previews/<sha256[:2]>/<sha256>-f<frame>-<size|full>.png`` through Django's storage API:
``STORAGES["dicom_previews"]`` when configured, else next to the files in the DICOM storage
(``STORAGES["dicom"]``, whose filesystem backend writes atomically, so a reader never sees half a
PNG; a PNG without its final IEND chunk is drawn again anyway).
The same file stored twice shares its previews; nothing needs invalidating, since a file's
content never changes under its sha256. Rendering is in ``imaging.preview``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.core.files.base import ContentFile
from django.core.files.storage import InvalidStorageError, Storage, storages

from .storage import dicom_storage

if TYPE_CHECKING:
    from .models import DicomInstance

log = logging.getLogger(__name__)

# The last chunk of every PNG; a file without it was still being written by another process.
PNG_END = b"IEND\xaeB`\x82"
# The sizes kept: the full image and the thumbnails the admin and the twin pages ask for. Any
# other viewport a client asks for is drawn each time, so that no client can fill the storage
# with a copy per size.
CACHED_SIZES = frozenset({None, 64, 96, 160, 512})


def preview_storage() -> Storage:
    """Where previews are kept: the ``dicom_previews`` storage if configured, else the DICOM one."""
    try:
        return storages["dicom_previews"]
    except InvalidStorageError:
        return dicom_storage()


def preview_name(sha256: str, *, frame: int = 0, size: int | None = None) -> str:
    return f"previews/{sha256[:2]}/{sha256}-f{frame}-{size or 'full'}.png"


def _read(storage: Storage, name: str) -> bytes | None:
    try:
        with storage.open(name, "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, OSError):
        return None
    return data if data.endswith(PNG_END) else None


def cached_png(instance: DicomInstance, *, frame: int = 0, size: int | None = None) -> bytes:
    """The instance's preview PNG: from the cache, else rendered from its file and kept
    (the first frame at the sizes of ``CACHED_SIZES``; other frames and sizes are drawn anew).

    Raises ``imaging.preview.PreviewUnavailable`` when the instance cannot be drawn; when its
    pixel data failed to decode although ``preview_state`` had judged them decodable, the
    instance is marked ``unavailable`` with the reason (not decoded again on later requests).
    """
    from .models import DicomInstance
    from .preview import PreviewUnavailable, render_stored
    from .services import record_preview_failure

    storage = preview_storage()
    name = preview_name(instance.sha256, frame=frame, size=size)
    kept = size in CACHED_SIZES and frame == 0
    if kept and storage.exists(name):
        data = _read(storage, name)
        if data is not None:
            return data
    try:
        png = render_stored(instance, frame=frame, size=size)
    except PreviewUnavailable as exc:
        if instance.preview == DicomInstance.PREVIEW_OK and exc.decoding:
            record_preview_failure(instance, exc.reason)
        raise
    if not kept:
        return png
    try:
        if not storage.exists(name):
            saved = storage.save(name, ContentFile(png))
            if saved != name:  # another process saved it meanwhile: keep one copy
                storage.delete(saved)
    except OSError as exc:
        log.warning("preview of %s not cached: %s", instance.sha256, exc)
    return png
