"""A file compressed in a transfer syntax no installed decoder handles is stored and described
like any other, with its preview marked unavailable (and why), never refused."""

from __future__ import annotations

import pytest
from pydicom.pixels import get_decoder

from imaging.models import DicomInstance
from imaging.services import store_files

from .imaging_intake_support import (
    JPEG_LS,
    RLE,
    data_of,
    dataset_of,
    dicom_storage,  # noqa: F401 (fixture)
    make_patient,
    stow,
)

pytestmark = pytest.mark.django_db


def test_undecodable_jpeg_ls_is_stored_described_and_marked_unavailable(api, dicom_storage):  # noqa: F811
    ds = dataset_of(JPEG_LS)
    syntax = ds.file_meta.TransferSyntaxUID
    assert syntax.is_compressed
    assert not get_decoder(syntax).is_available, "this test needs JPEG-LS to be undecodable here"
    patient = make_patient(str(ds.PatientID))

    response = stow(api, [("jpegls.dcm", data_of(JPEG_LS))])

    assert response.status_code == 200
    instance = DicomInstance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    assert instance.transfer_syntax == str(syntax)
    assert instance.preview == DicomInstance.PREVIEW_UNAVAILABLE
    assert "JPEG-LS" in instance.preview_note or "decoder" in instance.preview_note
    assert response.json()["stored"][0]["preview"] == "unavailable"
    study = instance.study
    body = api.fhir("GET", f"/fhir/ImagingStudy/{study.imaging_study_id}").json_body
    assert body["subject"] == {"reference": f"Patient/{patient}"}
    assert body["series"][0]["instance"][0]["uid"] == ds.SOPInstanceUID


def test_decodable_rle_is_stored_with_a_preview(dicom_storage):  # noqa: F811
    ds = dataset_of(RLE)
    assert get_decoder(ds.file_meta.TransferSyntaxUID).is_available

    result = store_files([("rle.dcm", data_of(RLE))])

    assert [i.preview for i in result.stored] == [DicomInstance.PREVIEW_OK]
    assert result.stored[0].transfer_syntax == str(ds.file_meta.TransferSyntaxUID)
