"""DICOM files are kept whole under their SHA-256 in the "dicom" storage (DICOM_STORAGE_DIR):
one copy per content, written all-or-nothing, and a damaged copy is written again."""

from __future__ import annotations

import hashlib
import os

import pytest

from imaging import storage
from imaging.models import DicomInstance
from imaging.services import store_files

from .imaging_intake_support import (
    CT,
    MR,
    data_of,
    dicom_storage,  # noqa: F401 (fixture)
    stored_files,
)

pytestmark = pytest.mark.django_db


def test_files_are_kept_whole_under_their_sha256(dicom_storage):  # noqa: F811
    result = store_files([("ct.dcm", data_of(CT)), ("mr.dcm", data_of(MR))])

    for instance, name in zip(result.stored, (CT, MR), strict=True):
        digest = hashlib.sha256(data_of(name)).hexdigest()
        assert instance.sha256 == digest and instance.size == len(data_of(name))
        path = dicom_storage / instance.storage_name
        assert path.name == f"{digest}.dcm"
        assert path.read_bytes() == data_of(name)
        with storage.open_instance(instance) as handle:
            assert handle.read() == data_of(name)
    # Nothing but the two files: no temporary file left behind.
    assert sorted(p.name for p in stored_files(dicom_storage)) == sorted(
        f"{i.sha256}.dcm" for i in result.stored
    )


def test_a_damaged_copy_under_the_name_is_written_again(dicom_storage):  # noqa: F811
    data = data_of(CT)
    name = storage.name_for(hashlib.sha256(data).hexdigest())
    damaged = dicom_storage / name
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(data[:1000])  # a copy cut short, by a crash outside this code

    result = store_files([("ct.dcm", data)])

    assert len(result.stored) == 1
    assert damaged.read_bytes() == data


def test_a_failed_write_leaves_no_file_and_no_row(dicom_storage, monkeypatch):  # noqa: F811
    real_fsync = os.fsync

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)

    result = store_files([("ct.dcm", data_of(CT))])

    monkeypatch.setattr(os, "fsync", real_fsync)
    assert result.stored == []
    assert result.failed[0][0] == "ct.dcm"
    assert "could not write" in result.failed[0][1]
    assert DicomInstance.objects.count() == 0
    assert stored_files(dicom_storage) == []


def test_default_location_is_under_the_var_dir_and_set_by_dicom_storage_dir():
    from django.conf import settings

    expected = os.environ.get("DICOM_STORAGE_DIR") or str(settings.VAR_DIR / "dicom")
    assert settings.STORAGES["dicom"]["OPTIONS"]["location"] == str(expected)
    assert settings.STORAGES["dicom"]["BACKEND"] == "imaging.storage.AtomicFileSystemStorage"
