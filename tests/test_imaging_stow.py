"""STOW-RS (DICOM PS3.18 10.5): POST /dicomweb/studies with a multipart/related body of DICOM
files answers which were stored and which failed, and why."""

from __future__ import annotations

import pytest

from imaging.models import DicomInstance

from .imaging_intake_support import (
    CT,
    MR,
    data_of,
    dataset_of,
    dicom_storage,  # noqa: F401 (fixture)
    make_patient,
    stow,
    stow_body,
)

pytestmark = pytest.mark.django_db


def test_all_parts_stored_answers_200_with_each_instance_and_its_url(api, dicom_storage):  # noqa: F811
    ct, mr = dataset_of(CT), dataset_of(MR)
    make_patient(str(ct.PatientID))

    response = stow(api, [("ct.dcm", data_of(CT)), ("mr.dcm", data_of(MR))])

    assert response.status_code == 200, response.content
    body = response.json()
    assert {i["sopInstanceUID"] for i in body["stored"]} == {ct.SOPInstanceUID, mr.SOPInstanceUID}
    assert body["failed"] == []
    by_uid = {i["sopInstanceUID"]: i for i in body["stored"]}
    assert by_uid[ct.SOPInstanceUID]["imagingStudy"].startswith("ImagingStudy/")
    assert by_uid[ct.SOPInstanceUID]["quarantined"] is False
    # No Patient carries the MR's PatientID: stored, quarantined, no ImagingStudy yet.
    assert by_uid[mr.SOPInstanceUID]["quarantined"] is True
    assert by_uid[mr.SOPInstanceUID]["imagingStudy"] is None
    url = by_uid[ct.SOPInstanceUID]["url"]
    assert url.endswith(
        f"/dicomweb/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}"
        f"/instances/{ct.SOPInstanceUID}"
    )
    assert api.get(url.split("testserver", 1)[1]).content == data_of(CT)


def test_one_good_and_one_bad_part_stores_the_good_one_and_answers_202(api, dicom_storage):  # noqa: F811
    response = stow(api, [("good.dcm", data_of(CT)), ("bad.dcm", b"this is not DICOM at all")])

    assert response.status_code == 202, response.content
    body = response.json()
    assert [i["sopInstanceUID"] for i in body["stored"]] == [dataset_of(CT).SOPInstanceUID]
    assert len(body["failed"]) == 1
    assert body["failed"][0]["file"] == "bad.dcm"
    assert "not a DICOM file" in body["failed"][0]["reason"]
    assert DicomInstance.objects.count() == 1


def test_only_bad_parts_answer_400_operation_outcome_naming_each(api, dicom_storage):  # noqa: F811
    response = stow(api, [("a.dcm", b"garbage"), ("b.dcm", data_of(CT)[:5000])])

    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    texts = [issue["diagnostics"] for issue in outcome["issue"]]
    assert any(t.startswith("a.dcm: not a DICOM file") for t in texts)
    assert any(t.startswith("b.dcm: truncated") for t in texts)
    assert DicomInstance.objects.count() == 0


def test_a_part_of_another_type_is_refused_by_name(api, dicom_storage):  # noqa: F811
    boundary = "b0undary"
    body = (
        (
            f"--{boundary}\r\nContent-Type: text/plain\r\nContent-Location: notes.txt\r\n\r\nhello\r\n"
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n"
        ).encode()
        + data_of(CT)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary="{boundary}"'

    response = api.generic("POST", "/dicomweb/studies", body, content_type=content_type)

    assert response.status_code == 202
    failed = response.json()["failed"]
    assert failed == [
        {"file": "notes.txt", "reason": "part of type text/plain, not application/dicom"}
    ]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/dicom",
        "multipart/form-data; boundary=x",
        'multipart/related; type="image/png"; boundary=x',
    ],
)
def test_a_body_that_is_not_multipart_related_dicom_is_415(api, dicom_storage, content_type):  # noqa: F811
    response = api.generic("POST", "/dicomweb/studies", data_of(CT), content_type=content_type)

    assert response.status_code == 415
    assert response.json()["resourceType"] == "OperationOutcome"
    assert DicomInstance.objects.count() == 0


def test_a_body_cut_before_its_closing_boundary_is_400(api, dicom_storage):  # noqa: F811
    body, content_type = stow_body([("ct.dcm", data_of(CT))])

    response = api.generic("POST", "/dicomweb/studies", body[:-40], content_type=content_type)

    assert response.status_code == 400
    assert "closing boundary" in response.json()["issue"][0]["diagnostics"]
    assert DicomInstance.objects.count() == 0


def test_stow_needs_authentication(anon, dicom_storage):  # noqa: F811
    response = stow(anon, [("ct.dcm", data_of(CT))])

    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"
    assert DicomInstance.objects.count() == 0
