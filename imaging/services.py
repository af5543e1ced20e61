"""The write paths of imaging: storing DICOM files, and linking a quarantined study to a Patient.

``store_files`` takes files from any intake (the STOW-RS endpoint, the admin upload,
``manage.py import_dicom``): each is read and checked (``dicomfile``), kept whole under its hash
(``storage``), recorded as a ``DicomInstance`` of its ``DicomStudy``, and the study's FHIR
ImagingStudy (https://hl7.org/fhir/R4B/imagingstudy.html) is written again through
``fhir_api.services.update``, so its history keeps every version. A rejected file leaves nothing
behind; the good files of the same upload are stored all the same. (Should the database refuse a
study's rows after its files were written, those files stay in storage unreferenced: named by
their hash, they are harmless and are used again when the files are sent again.)

The subject of a study is the Patient whose identifier is ``DICOM_PATIENT_ID_SYSTEM|<PatientID>``
(exactly one). With no such Patient (or more than one) the study is quarantined: it is stored and
listed, but no ImagingStudy is written, because ``ImagingStudy.subject`` is required in R4B and
nothing may be attached to a guessed patient. Each later upload to the study tries the match again;
``link_study`` is the clinician's decision, after which the ImagingStudy is written.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import IO
from urllib.parse import urlencode

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction

from fhir_api import services as fhir_services
from fhir_api.exceptions import BadRequest, FHIRError, NotFound
from fhir_api.models import Resource
from fhir_api.search.query import match_ids

from . import dicomfile, storage
from .dicomfile import DicomFile, DicomRejected
from .fhir import imaging_study
from .models import DicomInstance, DicomStudy
from .preview import preview_state

log = logging.getLogger(__name__)

# Files written to storage at once: each write ends with an fsync, and fsyncs in parallel share
# the disk's flushes instead of queueing one after another.
STORAGE_WRITERS = 8


@dataclass
class StoreResult:
    """What ``store_files`` did with each file.

    ``stored``: new instances; ``duplicates``: instances already held with the same bytes (a resend
    changes nothing); ``failed``: (file name, reason) of every file not stored. ``conflicts`` lists
    the failures that are conflicts with what is already stored (the same SOPInstanceUID with
    other bytes, another PatientID in the same study): an HTTP intake answers those with 409.
    """

    stored: list[DicomInstance] = field(default_factory=list)
    duplicates: list[DicomInstance] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[tuple[str, str]] = field(default_factory=list)

    def conflict(self, name: str, reason: str) -> None:
        self.failed.append((name, reason))
        self.conflicts.append((name, reason))


@dataclass
class _Read:
    name: str
    file: DicomFile
    data: bytes
    sha256: str
    preview: tuple[str, str]


@dataclass
class _Accepted:
    name: str
    file: DicomFile
    kept: storage.Stored
    preview: tuple[str, str]


def _preview_state(parsed: DicomFile) -> tuple[str, str]:
    """Whether a preview can be drawn (``preview.preview_state``; never fails a store)."""
    try:
        return preview_state(parsed.dataset)
    except Exception as exc:  # an odd file must still be stored; it just gets no preview
        log.warning("preview_state failed for %s: %s", parsed.sop_instance_uid, exc)
        return DicomInstance.PREVIEW_UNAVAILABLE, f"cannot tell whether it can be drawn: {exc}"


def _read_bytes(content: bytes | IO[bytes]) -> bytes:
    if isinstance(content, bytes | bytearray | memoryview):
        return bytes(content)
    if hasattr(content, "seek"):
        with contextlib.suppress(OSError, ValueError):
            content.seek(0)
    data = content.read()
    return data if isinstance(data, bytes) else bytes(data)


def _escape(value: str) -> str:
    """A token search value with FHIR's escapes (search.html#escaping)."""
    for char in ("\\", "|", ",", "$"):
        value = value.replace(char, "\\" + char)
    return value


def match_patient(dicom_patient_id: str) -> str:
    """The id of the one Patient with identifier ``DICOM_PATIENT_ID_SYSTEM|id``, else ''."""
    if not dicom_patient_id:
        return ""
    system = settings.DICOM_PATIENT_ID_SYSTEM
    query = urlencode({"identifier": f"{_escape(system)}|{_escape(dicom_patient_id)}"})
    ids = match_ids("Patient", query, limit=2)
    return ids[0] if len(ids) == 1 else ""


def _existing_outcome(existing: DicomInstance, item: _Accepted, result: StoreResult) -> None:
    if existing.sha256 == item.kept.sha256:
        result.duplicates.append(existing)
    else:
        result.conflict(
            item.name,
            f"SOPInstanceUID {item.file.sop_instance_uid} is already stored with other content"
            f" (sha256 {existing.sha256[:12]}…, this file {item.kept.sha256[:12]}…); the"
            " stored file is kept",
        )


def write_imaging_study(study: DicomStudy) -> None:
    """Write the study's ImagingStudy again from its rows (a new version). In a transaction."""
    if not study.patient_id:
        return
    if not study.imaging_study_id:
        study.imaging_study_id = fhir_services.new_id()
        study.save(update_fields=["imaging_study_id", "updated"])
    instances = list(study.instances.all())
    body = imaging_study(study, instances, study.imaging_study_id)
    fhir_services.update("ImagingStudy", study.imaging_study_id, body)


def _new_instance(study: DicomStudy, item: _Accepted, by: str) -> DicomInstance:
    parsed = item.file
    return DicomInstance(
        study=study,
        sop_instance_uid=parsed.sop_instance_uid,
        sop_class_uid=parsed.sop_class_uid,
        series_uid=parsed.series_uid,
        series_number=parsed.series_number,
        series_description=parsed.series_description,
        instance_number=parsed.instance_number,
        modality=parsed.modality,
        body_part=parsed.body_part,
        transfer_syntax=parsed.transfer_syntax,
        number_of_frames=parsed.number_of_frames,
        sha256=item.kept.sha256,
        size=item.kept.size,
        storage_name=item.kept.name,
        preview=item.preview[0],
        preview_note=item.preview[1][:200],
        received_by=by[:150],
    )


def _insert_instances(
    study: DicomStudy, items: list[_Accepted], by: str, result: StoreResult
) -> list[DicomInstance]:
    """Insert the instances (one statement); one by one when another upload raced us to one."""
    try:
        with transaction.atomic():
            return DicomInstance.objects.bulk_create([_new_instance(study, i, by) for i in items])
    except IntegrityError:
        pass
    added = []
    for item in items:
        try:
            with transaction.atomic():
                instance = _new_instance(study, item, by)
                instance.save(force_insert=True)
        except IntegrityError:
            # Another upload stored this SOPInstanceUID a moment ago.
            existing = DicomInstance.objects.get(sop_instance_uid=item.file.sop_instance_uid)
            _existing_outcome(existing, item, result)
            continue
        added.append(instance)
    return added


def _store_study(study_uid: str, items: list[_Accepted], by: str, result: StoreResult) -> None:
    first = items[0].file
    with transaction.atomic():
        study, _created = DicomStudy.objects.select_for_update().get_or_create(
            study_uid=study_uid,
            defaults={
                "dicom_patient_id": first.patient_id,
                "dicom_patient_name": first.patient_name,
                "started": first.started,
                "description": first.study_description,
            },
        )
        existing = {
            i.sop_instance_uid: i
            for i in DicomInstance.objects.filter(
                sop_instance_uid__in=[item.file.sop_instance_uid for item in items]
            )
        }
        new: list[_Accepted] = []
        for item in items:
            parsed = item.file
            if parsed.patient_id != study.dicom_patient_id:
                result.conflict(
                    item.name,
                    f"PatientID '{parsed.patient_id}' differs from the PatientID"
                    f" '{study.dicom_patient_id}' of study {study_uid} already stored",
                )
            elif parsed.sop_instance_uid in existing:
                _existing_outcome(existing[parsed.sop_instance_uid], item, result)
            else:
                new.append(item)
        added = _insert_instances(study, new, by, result) if new else []
        if not added:
            return
        if not study.patient_id:
            patient_id = match_patient(study.dicom_patient_id)
            if patient_id:
                study.patient_id = patient_id
                study.save(update_fields=["patient_id", "updated"])
        write_imaging_study(study)
    result.stored.extend(added)


def _read_file(name: str, content: bytes | IO[bytes], result: StoreResult) -> _Read | None:
    try:
        data = _read_bytes(content)
        parsed = dicomfile.read(data)
    except DicomRejected as exc:
        result.failed.append((name, exc.reason))
        return None
    except OSError as exc:
        result.failed.append((name, f"could not be read: {exc}"))
        return None
    preview = _preview_state(parsed)
    # The parsed data set is not needed past here: let it go before the next file is read.
    return _Read(name, replace(parsed, dataset=None), data, storage.sha256_of(data), preview)


def _known(uids: list[str]) -> dict[str, DicomInstance]:
    known: dict[str, DicomInstance] = {}
    for start in range(0, len(uids), 500):
        for instance in DicomInstance.objects.filter(
            sop_instance_uid__in=uids[start : start + 500]
        ):
            known[instance.sop_instance_uid] = instance
    return known


def _keep_all(reads: list[_Read], result: StoreResult) -> list[_Accepted]:
    """Write the files to storage, several at once (their fsyncs overlap), in upload order."""

    def keep(read: _Read) -> storage.Stored | str:
        try:
            return storage.keep(read.data, read.sha256)
        except storage.StorageFailed as exc:
            return str(exc)

    if len(reads) > 1:
        with ThreadPoolExecutor(max_workers=min(STORAGE_WRITERS, len(reads))) as pool:
            outcomes = list(pool.map(keep, reads))
    else:
        outcomes = [keep(read) for read in reads]
    accepted = []
    for read, outcome in zip(reads, outcomes, strict=True):
        if isinstance(outcome, str):
            result.failed.append((read.name, outcome))
        else:
            accepted.append(_Accepted(read.name, read.file, outcome, read.preview))
    return accepted


def store_files(files: Iterable[tuple[str, bytes | IO[bytes]]], *, by: str = "") -> StoreResult:
    """Store DICOM files (name, bytes or a binary file): see the module's docstring.

    All the files are read and checked first, then the new ones written to storage, then each
    study's new instances and its ImagingStudy are recorded in one database transaction, so a
    study is never described with instances that are not recorded. A SOPInstanceUID already
    held is a duplicate (same bytes) or a conflict (other bytes) and its file is not written.
    """
    result = StoreResult()
    pending = [r for name, content in files if (r := _read_file(name, content, result))]
    while pending:
        # A SOPInstanceUID seen earlier in this upload is decided once that one is recorded.
        known = _known(sorted({r.file.sop_instance_uid for r in pending}))
        first: list[_Read] = []
        again: list[_Read] = []
        seen: set[str] = set()
        for read in pending:
            uid = read.file.sop_instance_uid
            if uid in known:
                stored = storage.Stored("", read.sha256, len(read.data))
                accepted = _Accepted(read.name, read.file, stored, ("", ""))
                _existing_outcome(known[uid], accepted, result)
            elif uid in seen:
                again.append(read)
            else:
                seen.add(uid)
                first.append(read)
        _record(_keep_all(first, result), by, result)
        pending = again
    return result


def _record(accepted: list[_Accepted], by: str, result: StoreResult) -> None:
    groups: dict[str, list[_Accepted]] = {}
    for item in accepted:
        groups.setdefault(item.file.study_uid, []).append(item)
    for study_uid, items in groups.items():
        try:
            _store_study(study_uid, items, by, result)
        except (FHIRError, DatabaseError) as exc:
            reason = exc.diagnostics if isinstance(exc, FHIRError) else str(exc)
            log.exception("Storing study %s failed", study_uid)
            for item in items:
                result.failed.append((item.name, f"not recorded: {reason}"))


def link_study(study: DicomStudy, patient_id: str, *, by: str) -> DicomStudy:
    """A clinician attaches a (quarantined) study to a Patient; its ImagingStudy is written.

    Raises ``NotFound`` when no such Patient exists (or it was deleted). Linking a study already
    linked to another Patient moves it: the ImagingStudy gets a new version with the new subject.
    """
    patient_id = (patient_id or "").strip()
    if not patient_id:
        raise BadRequest("Give the id of the Patient the study belongs to")
    if not Resource.objects.filter(
        resource_type="Patient", logical_id=patient_id, deleted=False
    ).exists():
        raise NotFound(f"Patient/{patient_id} is not known")
    with transaction.atomic():
        study = DicomStudy.objects.select_for_update().get(pk=study.pk)
        study.patient_id = patient_id
        study.linked_by = by[:150]
        study.save(update_fields=["patient_id", "linked_by", "updated"])
        write_imaging_study(study)
    log.info("DICOM study %s linked to Patient/%s by %s", study.study_uid, patient_id, by)
    return study


def record_preview_failure(instance: DicomInstance, reason: str) -> None:
    """A preview ``preview_state`` judged possible could not be drawn: mark the instance
    ``unavailable`` with the reason, so that the admin and the twin say so and the file is not
    decoded again on every request (``imaging.preview_cache``)."""
    note = reason[:200]
    DicomInstance.objects.filter(pk=instance.pk, preview=DicomInstance.PREVIEW_OK).update(
        preview=DicomInstance.PREVIEW_UNAVAILABLE, preview_note=note
    )
    instance.preview, instance.preview_note = DicomInstance.PREVIEW_UNAVAILABLE, note
    log.warning("No preview of DICOM instance %s: %s", instance.sop_instance_uid, reason)
