"""Reading one uploaded DICOM file (DICOM PS3.10 media file format) and saying what it is.

A file is accepted only when it is a whole Part 10 file: the 128-byte preamble and ``DICM``
prefix with its File Meta Information (PS3.10 7.1), a data set pydicom can read to its end, and the
four UIDs CloudDTH files it under (StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID,
SOPClassUID; PS3.3 C.7.2.1, C.7.3.1, C.12.1). Anything else is a ``DicomRejected`` with a reason a
person can act on. The values read here describe the file in the database and in the FHIR
ImagingStudy (https://hl7.org/fhir/R4B/imagingstudy.html).

Truncation: pydicom reads a file cut short without complaint (the last value is just shorter), so
the file is read through a stream that notices a read that comes back short. A file cut exactly
between two elements is a well-formed shorter data set; it is still caught when it is an image
whose Pixel Data is missing, or when the cut removed one of the required UIDs.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pydicom
from django.conf import settings
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError

# The Media Storage Directory SOP Class: a DICOMDIR, an index of files rather than an instance.
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# The reason given for a DICOMDIR, which an import of a medium skips rather than counts as failed.
DICOMDIR_REASON = "a DICOMDIR (an index of files on a medium), not an instance"
# Digits and dots, at most 64 characters (PS3.5 9.1). Components with a leading zero, which
# PS3.5 forbids but some devices write, are accepted: refusing them would lose the images.
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class DicomRejected(Exception):
    """The file cannot be taken in; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _FileCutShort(Exception):
    pass


class _StrictStream(io.BytesIO):
    """A byte stream that raises when a read returns fewer bytes than asked for.

    pydicom asks for whole headers and values; at the true end of a file it asks for the next
    element's header once and gets nothing. Getting nothing twice means it asked for a value (or
    a sequence item) past the end.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.empty_reads = 0

    def read(self, size: int | None = -1, /) -> bytes:
        out = super().read(size)
        if size is not None and size > 0 and len(out) < size:
            if out:
                raise _FileCutShort
            self.empty_reads += 1
        return out


@dataclass(frozen=True)
class DicomFile:
    """What CloudDTH keeps of a readable DICOM file; ``dataset`` is the parsed file itself."""

    dataset: FileDataset | None  # None once the caller no longer needs it
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    modality: str
    body_part: str
    series_number: int | None
    series_description: str
    instance_number: int | None
    number_of_frames: int
    patient_id: str
    patient_name: str
    study_description: str
    started: datetime | None


def _text(dataset: Dataset, keyword: str, limit: int) -> str:
    try:
        value = dataset.get(keyword)
    except Exception:  # a value pydicom cannot convert: described as absent
        return ""
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()[:limit]


def _integer(dataset: Dataset, keyword: str) -> int | None:
    text = _text(dataset, keyword, 32)
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def _uid(dataset: Dataset, keyword: str) -> str:
    return _text(dataset, keyword, 200).rstrip("\x00")


def _time_zone(dataset: Dataset) -> timezone | ZoneInfo:
    """The study's time zone: Timezone Offset From UTC (0008,0201) when given, else TIME_ZONE."""
    offset = _text(dataset, "TimezoneOffsetFromUTC", 8)
    match = re.fullmatch(r"([+-])(\d\d)(\d\d)", offset)
    if match:
        sign = 1 if match.group(1) == "+" else -1
        minutes = int(match.group(2)) * 60 + int(match.group(3))
        return timezone(sign * timedelta(minutes=minutes))
    return ZoneInfo(settings.TIME_ZONE)


def study_started(dataset: Dataset) -> datetime | None:
    """StudyDate (DA, YYYYMMDD) and StudyTime (TM, HH[MM[SS[.F…]]]) as an aware datetime."""
    day_text = _text(dataset, "StudyDate", 16)
    match = re.fullmatch(r"(\d{4})(\d\d)(\d\d)", day_text)
    if not match:
        return None
    try:
        day = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None
    clock = time(0, 0)
    tm = re.fullmatch(
        r"(\d\d)(?::?(\d\d))?(?::?(\d\d))?(?:\.(\d{1,6}))?", _text(dataset, "StudyTime", 32)
    )
    if tm:
        try:
            clock = time(
                int(tm.group(1)),
                int(tm.group(2) or 0),
                min(int(tm.group(3) or 0), 59),
                int((tm.group(4) or "0").ljust(6, "0")),
            )
        except ValueError:
            clock = time(0, 0)
    return datetime.combine(day, clock).replace(tzinfo=_time_zone(dataset))


def read(data: bytes) -> DicomFile:
    """Parse one uploaded file; raise ``DicomRejected`` saying why it cannot be taken in."""
    if len(data) < 132 or data[128:132] != b"DICM":
        raise DicomRejected(
            "not a DICOM file: no 128-byte preamble followed by 'DICM' (DICOM PS3.10 7.1)"
        )
    stream = _StrictStream(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(stream)
    except _FileCutShort:
        raise DicomRejected(
            f"truncated: the file ends ({len(data)} bytes) inside a data element"
        ) from None
    except EOFError as exc:
        raise DicomRejected(f"truncated: {exc}") from None
    except InvalidDicomError as exc:
        raise DicomRejected(f"not a readable DICOM file: {exc}") from None
    except Exception as exc:  # pydicom raises many types for malformed input
        raise DicomRejected(f"not a readable DICOM file: {type(exc).__name__}: {exc}") from None
    if stream.empty_reads > 1:
        raise DicomRejected(f"truncated: the file ends ({len(data)} bytes) inside a data element")
    meta = dataset.file_meta
    if _uid(meta, "MediaStorageSOPClassUID") == MEDIA_STORAGE_DIRECTORY:
        raise DicomRejected(DICOMDIR_REASON)
    try:
        uids = {keyword: _uid(dataset, keyword) for keyword in REQUIRED_UIDS}
    except Exception as exc:
        raise DicomRejected(f"not a readable DICOM file: {exc}") from None
    missing = [keyword for keyword, value in uids.items() if not value]
    if missing:
        raise DicomRejected(f"missing {', '.join(missing)}: the file cannot be filed without it")
    malformed = [f"{k} '{v}'" for k, v in uids.items() if len(v) > 64 or not _UID.match(v)]
    if malformed:
        raise DicomRejected(f"not a valid UID (digits and dots, PS3.5 9.1): {', '.join(malformed)}")
    if "Rows" in dataset and not any(keyword in dataset for keyword in PIXEL_KEYWORDS):
        raise DicomRejected(
            "truncated: an image (it has Rows) whose file ends before its Pixel Data"
        )
    frames = _integer(dataset, "NumberOfFrames")
    return DicomFile(
        dataset=dataset,
        study_uid=uids["StudyInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=uids["SOPClassUID"],
        transfer_syntax=_uid(meta, "TransferSyntaxUID")[:64],
        modality=_text(dataset, "Modality", 16),
        body_part=_text(dataset, "BodyPartExamined", 64),
        series_number=_integer(dataset, "SeriesNumber"),
        series_description=_text(dataset, "SeriesDescription", 200),
        instance_number=_integer(dataset, "InstanceNumber"),
        number_of_frames=frames if frames and frames > 0 else 1,
        patient_id=_text(dataset, "PatientID", 64),
        patient_name=_text(dataset, "PatientName", 200),
        study_description=_text(dataset, "StudyDescription", 200),
        started=study_started(dataset),
    )
