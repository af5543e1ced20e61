"""Imaging for the local demo (``manage.py load_demo``): DICOM files of the pydicom wheel.

The files are the ones pydicom ships (``get_testdata_file(name, download=False)``: nothing is
downloaded). Their PatientIDs name nobody here, so each file meant for a demo patient gets that
patient's identifier as PatientID (and the patient's name), in memory, before it is stored
through ``services.store_files`` like any upload; the study then matches the Patient by
``DICOM_PATIENT_ID_SYSTEM`` and its FHIR ImagingStudy is written
(https://hl7.org/fhir/R4B/imagingstudy.html). Where the match fails (a deployment whose
``DICOM_PATIENT_ID_SYSTEM`` is not the demo's identifier system) the study is linked with
``services.link_study``, as a clinician would. One file keeps its own PatientID and waits in the
quarantine, so the admin's quarantine list has a study to link.

The rewrite gives the same bytes every time, so a second load finds every instance already
held (a duplicate) and stores nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO

import pydicom
from pydicom.data import get_testdata_file

from .models import DicomStudy
from .services import StoreResult, link_study, store_files

BY = "load_demo"


@dataclass(frozen=True)
class DemoFile:
    name: str  # a file in pydicom's test data
    patient: str  # the demo patient's identifier value; "" keeps the file's own PatientID
    what: str


DEMO_FILES = (
    DemoFile("CT_small.dcm", "DTH-0001", "CT slice"),
    DemoFile("waveform_ecg.dcm", "DTH-0001", "12-lead ECG waveform (no image: no preview)"),
    DemoFile("examples_ybr_color.dcm", "DTH-0003", "ultrasound cine loop, 30 frames (JPEG)"),
    DemoFile("MR_small.dcm", "", "MR slice of an unknown PatientID: quarantined"),
)


class DemoFileMissing(Exception):
    """A pydicom test file is not in the installed wheel."""


def _dataset(name: str) -> pydicom.Dataset:
    path = get_testdata_file(name, download=False)
    if not path:
        raise DemoFileMissing(f"{name} is not among the installed pydicom's test files")
    return pydicom.dcmread(path)


def _as_patient(dataset: pydicom.Dataset, key: str, dicom_name: str) -> bytes:
    dataset.PatientID = key
    dataset.PatientName = dicom_name
    out = BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def load_studies(
    patients: dict[str, tuple[str, str]], say: Callable[[str], None]
) -> tuple[StoreResult, list[DicomStudy]]:
    """Store the demo files; ``patients`` maps an identifier value to (Patient id, DICOM
    PatientName such as ``Whitfield^Margaret Rose``). The store result and the demo studies."""
    files: list[tuple[str, bytes]] = []
    owners: dict[str, str] = {}  # StudyInstanceUID -> Patient id
    for demo in DEMO_FILES:
        try:
            dataset = _dataset(demo.name)
        except DemoFileMissing as missing:
            say(f"  imaging: {missing}: left out")
            continue
        if demo.patient:
            patient_id, dicom_name = patients[demo.patient]
            owners[str(dataset.StudyInstanceUID)] = patient_id
            files.append((demo.name, _as_patient(dataset, demo.patient, dicom_name)))
        else:
            path = get_testdata_file(demo.name, download=False)
            with open(path, "rb") as handle:
                files.append((demo.name, handle.read()))
        owners.setdefault(str(dataset.StudyInstanceUID), "")
    result = store_files(files, by=BY)
    for name, reason in result.failed:
        say(f"  imaging: {name} not stored: {reason}")
    studies = list(DicomStudy.objects.filter(study_uid__in=list(owners)).order_by("pk"))
    for study in studies:
        wanted = owners[study.study_uid]
        if wanted and study.patient_id != wanted:
            link_study(study, wanted, by=BY)
            study.refresh_from_db()
    linked = sum(1 for s in studies if s.patient_id)
    say(
        f"  imaging: {len(result.stored)} DICOM instance(s) stored,"
        f" {len(result.duplicates)} already held; {linked} studies on demo patients,"
        f" {len(studies) - linked} in quarantine"
    )
    return result, studies
