"""Two uploads at once into the same new study, or of the same file: one study row, every
instance once, and an ImagingStudy that counts them all (PostgreSQL, as in production)."""

from __future__ import annotations

import threading

import pydicom
import pytest
from django.db import connection, connections

from fhir_api.models import Resource
from imaging.models import DicomInstance, DicomStudy
from imaging.services import StoreResult, store_files

from .imaging_intake_support import (
    dicom_storage,  # noqa: F401 (fixture)
    dicomdir_files,
    make_patient,
)

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(uploads: list[list[tuple[str, bytes]]]) -> list[StoreResult]:
    results: list[StoreResult | None] = [None] * len(uploads)
    errors: list[BaseException] = []
    start = threading.Barrier(len(uploads))

    def upload(index: int) -> None:
        try:
            start.wait()
            results[index] = store_files(uploads[index])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(uploads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return [r for r in results if r is not None]


@pytest.fixture
def on_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite runs one writer at a time)")


def test_two_uploads_into_one_new_study_at_once(on_postgres, dicom_storage):  # noqa: F811
    files = [p for p in dicomdir_files() if p.parent.name == "CT2"]  # one study, 4 images
    patient = make_patient(str(pydicom.dcmread(files[0]).PatientID))

    results = run_together(
        [
            [(str(p), p.read_bytes()) for p in files[:2]],
            [(str(p), p.read_bytes()) for p in files[2:]],
        ]
    )

    assert sum(len(r.stored) for r in results) == 4
    assert all(r.failed == [] for r in results)
    study = DicomStudy.objects.get()
    assert study.patient_id == patient and study.instances.count() == 4
    imaging_study = Resource.objects.get(resource_type="ImagingStudy")
    assert '"numberOfInstances":4' in imaging_study.content.replace(" ", "")


def test_the_same_file_sent_twice_at_once_is_stored_once(on_postgres, dicom_storage):  # noqa: F811
    path = dicomdir_files()[0]

    results = run_together([[("a.dcm", path.read_bytes())], [("b.dcm", path.read_bytes())]])

    assert sorted(len(r.stored) for r in results) == [0, 1]
    assert sorted(len(r.duplicates) for r in results) == [0, 1]
    assert DicomInstance.objects.count() == 1
