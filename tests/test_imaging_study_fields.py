"""Each stored study is described by one FHIR ImagingStudy whose fields are those of its DICOM
files (https://hl7.org/fhir/R4B/imagingstudy.html): CT, MR, a multi-frame RT Dose, an ECG
waveform, a JPEG-LS compressed MR and the dicomdirtests set (several patients and studies).

The expected values are read from the files with pydicom here, never written down."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone

import pydicom
import pytest

from imaging.fhir import BODY_PARTS
from imaging.models import DicomStudy
from imaging.services import store_files

from .imaging_intake_support import (
    CT,
    ECG,
    JPEG_LS,
    MR,
    MULTIFRAME,
    data_of,
    dataset_of,
    dicom_storage,  # noqa: F401 (fixture)
    dicomdir_files,
    make_patient,
)

DCM = "http://dicom.nema.org/resources/ontology/DCM"

pytestmark = pytest.mark.django_db


def expected_started(ds: pydicom.Dataset) -> datetime:
    offset = str(ds.get("TimezoneOffsetFromUTC", "") or "")
    tz = UTC
    if offset:
        sign = -1 if offset.startswith("-") else 1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    clock = str(ds.StudyTime).split(".")[0].ljust(6, "0")
    return datetime.strptime(f"{ds.StudyDate}{clock}", "%Y%m%d%H%M%S").replace(tzinfo=tz)


def read_imaging_study(api, study_uid: str) -> dict:
    study = DicomStudy.objects.get(study_uid=study_uid)
    assert study.imaging_study_id, "the study should have an ImagingStudy"
    response = api.fhir("GET", f"/fhir/ImagingStudy/{study.imaging_study_id}")
    assert response.status_code == 200
    return response.json_body


def check_against_files(body: dict, datasets: list[pydicom.Dataset], patient_id: str) -> None:
    first = datasets[0]
    assert body["identifier"] == [
        {"system": "urn:dicom:uid", "value": f"urn:oid:{first.StudyInstanceUID}"}
    ]
    assert body["status"] == "available"
    assert body["subject"] == {"reference": f"Patient/{patient_id}"}
    started = datetime.fromisoformat(body["started"].replace("Z", "+00:00"))
    assert started == expected_started(first)
    if first.get("StudyDescription"):
        assert body["description"] == first.StudyDescription
    by_series: dict[str, list[pydicom.Dataset]] = defaultdict(list)
    for ds in datasets:
        by_series[ds.SeriesInstanceUID].append(ds)
    assert body["numberOfSeries"] == len(by_series)
    assert body["numberOfInstances"] == len(datasets)
    assert {c["code"] for c in body["modality"]} == {ds.Modality for ds in datasets}
    assert all(c["system"] == DCM for c in body["modality"])
    assert {s["uid"] for s in body["series"]} == set(by_series)
    for series in body["series"]:
        members = by_series[series["uid"]]
        one = members[0]
        assert series["modality"] == {
            "system": DCM,
            "code": one.Modality,
            **(
                {"display": series["modality"]["display"]}
                if "display" in series["modality"]
                else {}
            ),
        }
        if one.get("SeriesNumber") is not None:
            assert series["number"] == int(one.SeriesNumber)
        if one.get("SeriesDescription"):
            assert series["description"] == one.SeriesDescription
        else:
            assert "description" not in series
        body_part = one.get("BodyPartExamined")
        if body_part:
            key = str(body_part).replace(" ", "").upper()
            if key in BODY_PARTS:
                assert series["bodySite"]["system"] == "http://snomed.info/sct"
                assert series["bodySite"]["code"] == BODY_PARTS[key][0]
            else:
                assert series["bodySite"] == {"display": str(body_part)}
        else:
            assert "bodySite" not in series
        assert series["numberOfInstances"] == len(members)
        instances = {i["uid"]: i for i in series["instance"]}
        assert set(instances) == {ds.SOPInstanceUID for ds in members}
        for ds in members:
            instance = instances[ds.SOPInstanceUID]
            assert instance["sopClass"] == {
                "system": "urn:ietf:rfc:3986",
                "code": f"urn:oid:{ds.SOPClassUID}",
            }
            if ds.get("InstanceNumber") is not None:
                assert instance["number"] == int(ds.InstanceNumber)
            else:
                assert "number" not in instance


@pytest.mark.parametrize("name", [CT, MR, MULTIFRAME, ECG, JPEG_LS])
def test_imaging_study_fields_match_the_dicom_tags(api, dicom_storage, name):  # noqa: F811
    ds = dataset_of(name)
    patient_id = make_patient(str(ds.PatientID))

    result = store_files([(name, data_of(name))], by="test")

    assert [i.sop_instance_uid for i in result.stored] == [ds.SOPInstanceUID]
    assert result.failed == []
    check_against_files(read_imaging_study(api, ds.StudyInstanceUID), [ds], patient_id)


def test_multi_frame_and_waveform_instances_are_recorded_as_such(dicom_storage):  # noqa: F811
    result = store_files([(n, data_of(n)) for n in (MULTIFRAME, ECG)])

    frames = {i.modality: i.number_of_frames for i in result.stored}
    assert frames == {"RTDOSE": int(dataset_of(MULTIFRAME).NumberOfFrames), "ECG": 1}


def test_dicomdir_set_gives_one_imaging_study_per_study_of_each_patient(
    api,
    dicom_storage,  # noqa: F811
):
    paths = dicomdir_files()
    datasets = [pydicom.dcmread(p) for p in paths]
    patients = {pid: make_patient(pid) for pid in sorted({str(ds.PatientID) for ds in datasets})}
    assert len(patients) >= 3
    by_study: dict[str, list[pydicom.Dataset]] = defaultdict(list)
    for ds in datasets:
        by_study[ds.StudyInstanceUID].append(ds)
    assert len(by_study) >= 5

    result = store_files([(str(p), p.read_bytes()) for p in paths])

    assert result.failed == []
    assert len(result.stored) == len(paths)
    for study_uid, members in by_study.items():
        body = read_imaging_study(api, study_uid)
        check_against_files(body, members, patients[str(members[0].PatientID)])
    found = api.fhir("GET", "/fhir/ImagingStudy?_count=100&_total=accurate").json_body
    assert found["total"] == len(by_study)
