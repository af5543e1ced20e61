"""A study whose PatientID matches no Patient waits in quarantine: stored, but described by no
ImagingStudy (its subject is required and must not be guessed) until a clinician links it; later
instances update the same ImagingStudy, whose history keeps every version."""

from __future__ import annotations

import io

import pydicom
import pytest

from fhir_api.exceptions import NotFound
from fhir_api.models import Resource
from imaging.models import DicomStudy
from imaging.services import link_study, store_files

from .imaging_intake_support import (
    dicom_storage,  # noqa: F401 (fixture)
    dicomdir_files,
    make_patient,
)

pytestmark = pytest.mark.django_db


def ct_head_study() -> list:
    """The four CT HEAD images of patient 77654033 (one study, one series)."""
    return [p for p in dicomdir_files() if p.parent.name == "CT2"]


def imaging_studies() -> int:
    return Resource.objects.filter(resource_type="ImagingStudy", deleted=False).count()


def test_unmatched_study_is_quarantined_then_linked_then_updated(api, dicom_storage):  # noqa: F811
    files = ct_head_study()
    assert len(files) == 4

    result = store_files([(str(p), p.read_bytes()) for p in files[:2]])

    study = DicomStudy.objects.get()
    assert study.quarantined and study.dicom_patient_id == "77654033"
    assert study.imaging_study_id == ""
    assert {i.study_id for i in result.stored} == {study.pk}
    assert imaging_studies() == 0

    patient = make_patient("someone-else")  # the clinician picks this Patient
    linked = link_study(study, patient, by="dr.who")

    assert linked.patient_id == patient and linked.linked_by == "dr.who"
    body = api.fhir("GET", f"/fhir/ImagingStudy/{linked.imaging_study_id}").json_body
    assert body["subject"] == {"reference": f"Patient/{patient}"}
    assert body["numberOfInstances"] == 2

    store_files([(str(p), p.read_bytes()) for p in files[2:]])

    body = api.fhir("GET", f"/fhir/ImagingStudy/{linked.imaging_study_id}").json_body
    assert body["numberOfInstances"] == 4
    assert body["subject"] == {"reference": f"Patient/{patient}"}
    assert body["meta"]["versionId"] == "2"
    history = api.fhir("GET", f"/fhir/ImagingStudy/{linked.imaging_study_id}/_history").json_body
    counts = sorted(e["resource"]["numberOfInstances"] for e in history["entry"])
    assert counts == [2, 4]


def test_a_patient_created_later_is_matched_when_more_images_arrive(api, dicom_storage):  # noqa: F811
    files = ct_head_study()
    store_files([(str(files[0]), files[0].read_bytes())])
    assert DicomStudy.objects.get().quarantined

    patient = make_patient("77654033")
    store_files([(str(files[1]), files[1].read_bytes())])

    study = DicomStudy.objects.get()
    assert study.patient_id == patient
    body = api.fhir("GET", f"/fhir/ImagingStudy/{study.imaging_study_id}").json_body
    assert body["numberOfInstances"] == 2


def test_two_patients_with_the_patient_id_is_no_match(dicom_storage):  # noqa: F811
    make_patient("77654033")
    make_patient("77654033")
    files = ct_head_study()

    store_files([(str(files[0]), files[0].read_bytes())])

    assert DicomStudy.objects.get().quarantined
    assert imaging_studies() == 0


def test_linking_to_an_unknown_patient_is_refused(dicom_storage):  # noqa: F811
    files = ct_head_study()
    store_files([(str(files[0]), files[0].read_bytes())])
    study = DicomStudy.objects.get()

    with pytest.raises(NotFound):
        link_study(study, "no-such-patient", by="dr.who")

    assert DicomStudy.objects.get().quarantined
    assert imaging_studies() == 0


def test_a_file_with_another_patient_id_for_the_same_study_is_a_conflict(dicom_storage):  # noqa: F811
    files = ct_head_study()
    store_files([(str(files[0]), files[0].read_bytes())])
    ds = pydicom.dcmread(files[1])
    ds.PatientID = "OTHER-PATIENT"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)

    result = store_files([("other.dcm", out.getvalue())])

    assert result.stored == []
    assert [name for name, _ in result.conflicts] == ["other.dcm"]
    assert "PatientID 'OTHER-PATIENT' differs" in result.conflicts[0][1]
    assert DicomStudy.objects.get().instances.count() == 1
