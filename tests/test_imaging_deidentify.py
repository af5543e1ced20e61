"""GET …/instances/{uid}?deidentify=true: a copy without the direct identifiers of the DICOM
Basic Application Level Confidentiality Profile (PS3.15 Annex E), the stored file untouched."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from imaging.services import store_files

from .imaging_intake_support import (
    CT,
    ECG,
    data_of,
    dicom_storage,  # noqa: F401 (fixture)
)

pytestmark = pytest.mark.django_db

IDENTIFYING = {
    "PatientName": "Doe^Jane",
    "PatientID": "NHS-943-476-5919",
    "PatientBirthDate": "19380412",
    "PatientAddress": "12 Acacia Avenue, Leeds",
    "OtherPatientIDs": "MRN-77123",
    "PatientTelephoneNumbers": "0113 496 0000",
    "ReferringPhysicianName": "Referrer^Rita",
    "InstitutionName": "St Elsewhere Hospital",
    "InstitutionAddress": "1 Hospital Road, Leeds",
    "AccessionNumber": "ACC-20991",
    "StudyID": "STUDY-4411",
    "OperatorsName": "Operator^Otto",
    "PerformingPhysicianName": "Performer^Petra",
    "StationName": "CT-SCANNER-3",
}


def identified_ct() -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data_of(CT)))
    for keyword, value in IDENTIFYING.items():
        setattr(ds, keyword, value)
    nested = Dataset()
    nested.PatientName = "Nested^Name"
    nested.ReferencedSOPClassUID = ds.SOPClassUID
    nested.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    ds.SourceImageSequence = Sequence([nested])
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def instance_url(ds: pydicom.Dataset) -> str:
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def test_deidentified_copy_has_none_of_the_identifiers(api, dicom_storage):  # noqa: F811
    original = identified_ct()
    source = pydicom.dcmread(io.BytesIO(original))
    assert any(e.tag.is_private for e in source)
    store_files([("ct.dcm", original)])

    response = api.get(instance_url(source) + "?deidentify=true")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom"
    for value in [*IDENTIFYING.values(), "Nested^Name", "JFK IMAGING CENTER", "CompressedSamples"]:
        assert value.encode() not in response.content, value
    copy = pydicom.dcmread(io.BytesIO(response.content))
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "StudyID"):
        assert keyword in copy and not copy[keyword].value, keyword  # Type 2: present, empty
    for keyword in ("PatientAddress", "OtherPatientIDs", "InstitutionName", "InstitutionAddress"):
        assert keyword not in copy, keyword
    for keyword in ("OperatorsName", "PerformingPhysicianName", "StationName", "SeriesDate"):
        assert keyword not in copy, keyword
    assert not copy.StudyDate
    assert not any(e.tag.is_private for e in copy)
    assert not copy.SourceImageSequence[0].get("PatientName")
    assert copy.PatientIdentityRemoved == "YES"
    assert "DICOM PS3.15 Annex E Basic Profile (CloudDTH)" in copy.DeidentificationMethod
    codes = {item.CodeValue for item in copy.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113110"}
    # Retain UIDs Option: the copy names the same study, series and instance.
    assert (copy.StudyInstanceUID, copy.SeriesInstanceUID, copy.SOPInstanceUID) == (
        source.StudyInstanceUID,
        source.SeriesInstanceUID,
        source.SOPInstanceUID,
    )
    # The image itself is unchanged.
    assert copy.PixelData == source.PixelData


def test_the_stored_file_is_not_changed_by_an_export(api, dicom_storage):  # noqa: F811
    original = data_of(ECG)
    ds = pydicom.dcmread(io.BytesIO(original))
    store_files([("ecg.dcm", original)])

    exported = api.get(instance_url(ds) + "?deidentify=true")
    again = api.get(instance_url(ds))

    assert exported.status_code == 200
    assert str(ds.PatientID).encode() not in exported.content
    assert again.content == original


def test_deidentify_takes_only_true_or_false(api, dicom_storage):  # noqa: F811
    store_files([("ct.dcm", data_of(CT))])
    ds = pydicom.dcmread(io.BytesIO(data_of(CT)))

    response = api.get(instance_url(ds) + "?deidentify=maybe")

    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
