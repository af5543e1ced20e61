"""WADO-RS (DICOM PS3.18 10.4): GET /dicomweb/studies/{study}/series/{series}/instances/{instance}
returns the stored file byte for byte; anything unknown is a 404 OperationOutcome."""

from __future__ import annotations

import pydicom
import pytest

from imaging.services import store_files

from .imaging_intake_support import (
    CT,
    ECG,
    JPEG_LS,
    MR,
    MULTIFRAME,
    RLE,
    data_of,
    dataset_of,
    dicom_storage,  # noqa: F401 (fixture)
    dicomdir_files,
    path_of,
)

pytestmark = pytest.mark.django_db


def url(ds: pydicom.Dataset) -> str:
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


@pytest.mark.parametrize("name", [CT, MR, MULTIFRAME, ECG, JPEG_LS])
def test_retrieval_returns_the_stored_file_byte_identical(api, dicom_storage, name):  # noqa: F811
    data = data_of(name)
    store_files([(name, data)])

    response = api.get(url(pydicom.dcmread(path_of(name))))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom"
    assert response.content == data


def test_every_file_of_the_dicomdir_set_comes_back_identical(api, dicom_storage):  # noqa: F811
    paths = dicomdir_files()
    store_files([(str(p), p.read_bytes()) for p in paths])

    for path in paths:
        response = api.get(url(pydicom.dcmread(path)))
        assert response.status_code == 200
        assert response.content == path.read_bytes(), path


def test_unknown_instance_or_a_wrong_series_is_404_operation_outcome(api, dicom_storage):  # noqa: F811
    store_files([(CT, data_of(CT))])
    ds = dataset_of(CT)

    unknown = api.get(url(ds).replace(ds.SOPInstanceUID, "1.2.3.4"))
    wrong_series = api.get(url(ds).replace(ds.SeriesInstanceUID, "1.2.3"))
    not_stored = api.get(url(dataset_of(RLE)))

    for response in (unknown, wrong_series, not_stored):
        assert response.status_code == 404
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "not-found"


def test_retrieval_needs_authentication(anon, dicom_storage):  # noqa: F811
    store_files([(CT, data_of(CT))])
    ds = dataset_of(CT)

    response = anon.get(url(ds))

    assert response.status_code == 401
    assert response.content != data_of(CT)


def test_a_dicomweb_client_asking_for_multipart_gets_the_file_in_one_part(api, dicom_storage):  # noqa: F811
    from imaging.multipart import parse_related

    store_files([(CT, data_of(CT))])

    response = api.get(
        url(dataset_of(CT)), HTTP_ACCEPT='multipart/related; type="application/dicom"'
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("multipart/related")
    parts = parse_related(response["Content-Type"], response.content)
    assert [(p.content_type, p.data) for p in parts] == [("application/dicom", data_of(CT))]
