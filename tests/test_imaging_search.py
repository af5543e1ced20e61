"""Stored studies are found over FHIR search like any ImagingStudy: by patient and modality
(ImagingStudy?patient=…&modality=CT), by the study's DICOM UID, and by body site."""

from __future__ import annotations

from collections import defaultdict

import pydicom
import pytest

from imaging.services import store_files

from .imaging_intake_support import (
    dicom_storage,  # noqa: F401 (fixture)
    dicomdir_files,
    make_patient,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def dicomdir_stored(dicom_storage):  # noqa: F811
    paths = dicomdir_files()
    datasets = [pydicom.dcmread(p) for p in paths]
    patients = {pid: make_patient(pid) for pid in sorted({str(d.PatientID) for d in datasets})}
    result = store_files([(str(p), p.read_bytes()) for p in paths])
    assert result.failed == []
    # patient → modality → study UIDs, from the files
    studies: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for ds in datasets:
        studies[str(ds.PatientID)][str(ds.Modality)].add(str(ds.StudyInstanceUID))
    return patients, studies


def study_uids(bundle: dict) -> set[str]:
    return {
        e["resource"]["identifier"][0]["value"].removeprefix("urn:oid:")
        for e in bundle.get("entry", [])
    }


def test_patient_and_modality_find_that_patients_studies_of_that_modality(api, dicomdir_stored):
    patients, studies = dicomdir_stored
    checked = 0
    for dicom_id, by_modality in studies.items():
        for modality, uids in by_modality.items():
            response = api.fhir(
                "GET", f"/fhir/ImagingStudy?patient={patients[dicom_id]}&modality={modality}"
            )
            assert response.status_code == 200
            assert study_uids(response.json_body) == uids, (dicom_id, modality)
            checked += 1
    assert checked >= 4
    # A modality the patient has no image of finds nothing.
    no_mr = next(pid for pid, by_modality in studies.items() if "MR" not in by_modality)
    response = api.fhir("GET", f"/fhir/ImagingStudy?patient={patients[no_mr]}&modality=MR")
    assert study_uids(response.json_body) == set()


def test_ct_search_does_not_return_mr_or_other_patients(api, dicomdir_stored):
    patients, studies = dicomdir_stored
    both = next(pid for pid, m in studies.items() if {"CT", "MR"} <= set(m))

    ct = api.fhir(
        "GET",
        f"/fhir/ImagingStudy?patient=Patient/{patients[both]}"
        "&modality=http://dicom.nema.org/resources/ontology/DCM|CT",
    ).json_body

    assert study_uids(ct) == studies[both]["CT"]
    assert not study_uids(ct) & studies[both]["MR"]
    others = {uid for pid, m in studies.items() if pid != both for uid in m.get("CT", set())}
    assert others and not study_uids(ct) & others


def test_found_by_study_uid_and_by_body_site(api, dicomdir_stored):
    _, studies = dicomdir_stored
    uid = next(iter(studies["77654033"]["CT"]))

    by_uid = api.fhir("GET", f"/fhir/ImagingStudy?identifier=urn:dicom:uid|urn:oid:{uid}")
    head = api.fhir("GET", "/fhir/ImagingStudy?bodysite=http://snomed.info/sct|69536005")

    assert study_uids(by_uid.json_body) == {uid}
    assert study_uids(head.json_body) == {uid}
