"""The same SOPInstanceUID sent twice: the same bytes are a duplicate (nothing changes); other
bytes are a conflict (409) naming the instance, and the file already stored is kept."""

from __future__ import annotations

import pytest

from fhir_api.models import ResourceVersion
from imaging.models import DicomInstance
from imaging.services import store_files

from .imaging_intake_support import (
    CT,
    data_of,
    dataset_of,
    dicom_storage,  # noqa: F401 (fixture)
    make_patient,
    rewrite,
    stored_files,
    stow,
)

pytestmark = pytest.mark.django_db


def wado_url(ds) -> str:
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def test_same_file_twice_is_a_duplicate_and_changes_nothing(api, dicom_storage):  # noqa: F811
    make_patient(str(dataset_of(CT).PatientID))
    first = store_files([("ct.dcm", data_of(CT))])
    versions = ResourceVersion.objects.filter(resource_type="ImagingStudy").count()

    again = store_files([("ct-again.dcm", data_of(CT))])
    over_http = stow(api, [("ct-third.dcm", data_of(CT))])

    assert again.stored == [] and again.failed == []
    assert [i.pk for i in again.duplicates] == [first.stored[0].pk]
    assert over_http.status_code == 200
    body = over_http.json()
    assert body["stored"] == [] and body["failed"] == []
    assert [i["sopInstanceUID"] for i in body["duplicates"]] == [dataset_of(CT).SOPInstanceUID]
    assert DicomInstance.objects.count() == 1
    assert len(stored_files(dicom_storage)) == 1
    assert ResourceVersion.objects.filter(resource_type="ImagingStudy").count() == versions == 1


def test_same_uid_with_other_bytes_is_a_conflict_and_the_stored_file_is_kept(api, dicom_storage):  # noqa: F811
    ds = dataset_of(CT)
    store_files([("ct.dcm", data_of(CT))])
    altered = rewrite(CT, SeriesDescription="a different file with the same SOPInstanceUID")
    assert altered != data_of(CT)

    result = store_files([("altered.dcm", altered)])
    response = stow(api, [("altered.dcm", altered)])

    assert result.stored == [] and result.duplicates == []
    assert result.conflicts == result.failed
    assert ds.SOPInstanceUID in result.failed[0][1]
    assert "already stored with other content" in result.failed[0][1]
    assert response.status_code == 409
    issue = response.json()["issue"][0]
    assert issue["code"] == "conflict"
    assert issue["diagnostics"].startswith(f"altered.dcm: SOPInstanceUID {ds.SOPInstanceUID}")
    assert api.get(wado_url(ds)).content == data_of(CT)
    assert len(stored_files(dicom_storage)) == 1


def test_the_same_uid_twice_in_one_upload(dicom_storage):  # noqa: F811
    altered = rewrite(CT, SeriesDescription="other bytes")

    result = store_files([("a.dcm", data_of(CT)), ("b.dcm", data_of(CT)), ("c.dcm", altered)])

    assert len(result.stored) == 1
    assert [i.sop_instance_uid for i in result.duplicates] == [dataset_of(CT).SOPInstanceUID]
    assert [name for name, _ in result.conflicts] == ["c.dcm"]
    assert DicomInstance.objects.count() == 1
