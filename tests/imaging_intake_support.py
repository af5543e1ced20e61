"""Helpers of the imaging intake tests: the DICOM files shipped in the pydicom wheel, a DICOM
storage of the test's own, Patients carrying a DICOM PatientID, and STOW-RS bodies."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pydicom
import pytest
from django.conf import settings as django_settings
from pydicom.data import get_testdata_file

from fhir_api import services as store

CT = "CT_small.dcm"
MR = "MR_small.dcm"
MULTIFRAME = "rtdose.dcm"  # RT Dose, 15 frames
ECG = "waveform_ecg.dcm"
JPEG_LS = "MR_small_jpeg_ls_lossless.dcm"  # JPEG-LS: no decoder installed here
RLE = "MR_small_RLE.dcm"


def path_of(name: str) -> Path:
    return Path(get_testdata_file(name, download=False))


def data_of(name: str) -> bytes:
    return path_of(name).read_bytes()


def dataset_of(name: str) -> pydicom.Dataset:
    return pydicom.dcmread(path_of(name))


def dicomdir_files() -> list[Path]:
    """Every instance of the dicomdirtests set (several patients, studies and series)."""
    root = path_of("dicomdirtests/DICOMDIR").parent
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.upper().startswith(("DICOMDIR", "README"))
    )


def rewrite(name: str, **changes) -> bytes:
    """A test file with some attributes changed (None: removed), written as a Part 10 file."""
    ds = dataset_of(name)
    for keyword, value in changes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture
def dicom_storage(settings, tmp_path) -> Path:
    """The "dicom" storage in a folder of this test's own."""
    location = tmp_path / "dicom"
    settings.STORAGES = {
        **django_settings.STORAGES,
        "dicom": {
            "BACKEND": "imaging.storage.AtomicFileSystemStorage",
            "OPTIONS": {"location": str(location)},
        },
    }
    return location


def stored_files(location: Path) -> list[Path]:
    return sorted(p for p in location.rglob("*") if p.is_file()) if location.exists() else []


def make_patient(dicom_patient_id: str) -> str:
    body = {
        "resourceType": "Patient",
        "identifier": [
            {"system": django_settings.DICOM_PATIENT_ID_SYSTEM, "value": dicom_patient_id}
        ],
        "name": [{"family": "Imaging", "given": ["Test"]}],
    }
    return store.create("Patient", body).resource.logical_id


def stow_body(parts: list[tuple[str, bytes]], boundary: str | None = None) -> tuple[bytes, str]:
    """A multipart/related STOW-RS body (RFC 2387) and its Content-Type."""
    boundary = boundary or f"dicom-{uuid.uuid4().hex}"
    chunks = []
    for name, data in parts:
        chunks.append(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n"
            f"Content-Location: {name}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def stow(api, parts: list[tuple[str, bytes]]):
    body, content_type = stow_body(parts)
    return api.generic("POST", "/dicomweb/studies", body, content_type=content_type)
