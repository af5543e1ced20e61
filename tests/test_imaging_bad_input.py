"""Files that cannot be taken in are refused with a reason naming the problem, nothing of them is
kept (no row, no stored file), and good files sent with them are stored all the same."""

from __future__ import annotations

import pytest

from imaging.models import DicomInstance, DicomStudy
from imaging.services import store_files

from .imaging_intake_support import (
    CT,
    MR,
    data_of,
    dicom_storage,  # noqa: F401 (fixture)
    path_of,
    rewrite,
    stored_files,
    stow,
)

pytestmark = pytest.mark.django_db


def pixel_data_offset(data: bytes) -> int:
    """Where the Pixel Data element (7FE0,0010) starts in an explicit VR little endian file."""
    return data.rindex(b"\xe0\x7f\x10\x00OW")


BAD_FILES = {
    "garbage": (lambda: b"\x00\x01 definitely not an image" * 40, "not a DICOM file"),
    "empty": (lambda: b"", "not a DICOM file"),
    "no_preamble": (lambda: path_of("no_meta.dcm").read_bytes(), "not a DICOM file"),
    "text_file": (lambda: path_of("README.txt").read_bytes(), "not a DICOM file"),
    "preamble_then_garbage": (
        lambda: b"\x00" * 128 + b"DICM" + b"\xff" * 300,
        # read as an element whose length runs past the end of the file
        ("not a readable DICOM file", "truncated"),
    ),
    "truncated_in_pixel_data": (lambda: data_of(CT)[:-1000], "truncated"),
    "truncated_by_one_byte": (lambda: data_of(CT)[:-1], "truncated"),
    "truncated_in_a_header": (
        lambda: data_of(CT)[: pixel_data_offset(data_of(CT)) + 5],
        "truncated",
    ),
    "truncated_before_pixel_data": (
        lambda: data_of(CT)[: pixel_data_offset(data_of(CT))],
        "truncated: an image (it has Rows) whose file ends before its Pixel Data",
    ),
    "pydicom_truncated_mr": (lambda: path_of("MR_truncated.dcm").read_bytes(), "truncated"),
    "no_study_uid": (lambda: rewrite(CT, StudyInstanceUID=None), "missing StudyInstanceUID"),
    "no_series_uid": (lambda: rewrite(CT, SeriesInstanceUID=None), "missing SeriesInstanceUID"),
    "no_sop_instance_uid": (lambda: rewrite(CT, SOPInstanceUID=None), "missing SOPInstanceUID"),
    "no_sop_class_uid": (lambda: rewrite(CT, SOPClassUID=None), "missing SOPClassUID"),
    "bad_uid": (lambda: rewrite(CT, StudyInstanceUID="1.2.abc.3"), "not a valid UID"),
    "uid_too_long": (lambda: rewrite(CT, SeriesInstanceUID="1." + "2" * 70), "not a valid UID"),
    "dicomdir": (
        lambda: path_of("dicomdirtests/DICOMDIR").read_bytes(),
        "a DICOMDIR",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_is_refused_with_its_reason_and_nothing_is_kept(dicom_storage, case):  # noqa: F811
    make, reason = BAD_FILES[case]

    result = store_files([(f"{case}.dcm", make())])

    assert result.stored == [] and result.duplicates == []
    assert len(result.failed) == 1
    name, why = result.failed[0]
    assert name == f"{case}.dcm"
    assert why.startswith(reason), why
    assert DicomInstance.objects.count() == 0
    assert DicomStudy.objects.count() == 0
    assert stored_files(dicom_storage) == []


def test_bad_files_beside_good_ones_in_one_upload(dicom_storage):  # noqa: F811
    files = [(case, make()) for case, (make, _) in sorted(BAD_FILES.items())]
    files.insert(3, ("ct.dcm", data_of(CT)))
    files.append(("mr.dcm", data_of(MR)))

    result = store_files(files)

    assert sorted(i.modality for i in result.stored) == ["CT", "MR"]
    assert len(result.failed) == len(BAD_FILES)
    assert DicomInstance.objects.count() == 2
    assert len(stored_files(dicom_storage)) == 2


def test_stow_with_only_bad_files_is_400_naming_every_file(api, dicom_storage):  # noqa: F811
    files = [(case, make()) for case, (make, _) in sorted(BAD_FILES.items())]

    response = stow(api, files)

    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    diagnostics = [issue["diagnostics"] for issue in outcome["issue"]]
    for case, (_, reason) in BAD_FILES.items():
        prefixes = tuple(f"{case}: {r}" for r in ((reason,) if isinstance(reason, str) else reason))
        assert any(d.startswith(prefixes) for d in diagnostics), case
    assert stored_files(dicom_storage) == []


def test_a_uid_with_a_leading_zero_component_is_still_stored(dicom_storage):  # noqa: F811
    """PS3.5 forbids "1.2.03" but devices write it; refusing the file would lose the image."""
    result = store_files([("ct.dcm", rewrite(CT, SOPInstanceUID="1.2.826.0.1.03.7"))])

    assert [i.sop_instance_uid for i in result.stored] == ["1.2.826.0.1.03.7"]
