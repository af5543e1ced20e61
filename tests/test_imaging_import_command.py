"""manage.py import_dicom DIR: stores every DICOM file under the folder (recursively), prints
what it stored, what it already had and what failed with the reason, and exits non-zero when a
file failed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from imaging.models import DicomInstance

from .conftest import ROOT
from .imaging_intake_support import (
    CT,
    data_of,
    dicom_storage,  # noqa: F401 (fixture)
    dicomdir_files,
    path_of,
)

pytestmark = pytest.mark.django_db


def copy_dicomdir_set(target: Path) -> int:
    """The dicomdirtests folder (its DICOMDIR variants and READMEs too) under ``target``."""
    root = path_of("dicomdirtests/DICOMDIR").parent
    shutil.copytree(root, target / "dicomdirtests")
    return len(dicomdir_files())


def test_import_stores_a_folder_tree_and_a_rerun_finds_duplicates(tmp_path, dicom_storage):  # noqa: F811
    source = tmp_path / "medium"
    count = copy_dicomdir_set(source)
    for name in ("dicomdirtests/README.txt", "dicomdirtests/TINY_ALPHA/README"):
        (source / name).unlink()
    out = StringIO()

    call_command("import_dicom", str(source), stdout=out, stderr=StringIO())

    assert DicomInstance.objects.count() == count
    assert f"{count} stored, 0 duplicate(s), 0 failed" in out.getvalue()
    assert "skipped (a DICOMDIR index)" in out.getvalue()

    again = StringIO()
    call_command("import_dicom", str(source), "--batch", "7", stdout=again, stderr=StringIO())

    assert f"0 stored, {count} duplicate(s), 0 failed" in again.getvalue()
    assert DicomInstance.objects.count() == count


def test_failures_are_listed_with_reasons_and_fail_the_command(tmp_path, dicom_storage):  # noqa: F811
    tmp_path = tmp_path / "medium"
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    (tmp_path / "nested" / "ct.dcm").write_bytes(data_of(CT))
    (tmp_path / "nested" / "deeper" / "cut.dcm").write_bytes(data_of(CT)[:-500])
    (tmp_path / "notes.txt").write_text("not an image")
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("import_dicom", str(tmp_path), stdout=out, stderr=StringIO())

    assert raised.value.returncode == 1
    text = out.getvalue()
    assert f"FAILED {tmp_path / 'nested' / 'deeper' / 'cut.dcm'}: truncated" in text
    assert f"FAILED {tmp_path / 'notes.txt'}: not a DICOM file" in text
    assert "1 stored, 0 duplicate(s), 2 failed, 0 DICOMDIR skipped, of 3 file(s)" in text
    assert DicomInstance.objects.count() == 1


def test_exit_status_of_the_real_command(tmp_path, transactional_db):
    """Run as a user would: the process exits 1 with a failure, 0 without."""
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "ct.dcm").write_bytes(data_of(CT))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "junk.dcm").write_bytes(b"junk")
    db = settings.DATABASES["default"]
    env = {**os.environ, "DICOM_STORAGE_DIR": str(tmp_path / "store"), "DEBUG": "1"}
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        env["DATABASE_URL"] = (
            f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:"
            f"{db.get('PORT') or 5432}/{db['NAME']}"
        )
        env["REQUIRE_POSTGRES"] = "0"

    def run(folder: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "import_dicom", str(tmp_path / folder)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    bad = run("bad")
    good = run("good")

    assert bad.returncode == 1, bad.stderr
    assert "FAILED" in bad.stdout and "not a DICOM file" in bad.stdout
    assert good.returncode == 0, good.stderr
    assert "1 stored, 0 duplicate(s), 0 failed" in good.stdout
    assert (tmp_path / "store").is_dir()
    assert DicomInstance.objects.count() == 1


def test_a_named_pipe_in_the_folder_is_reported_and_does_not_block_the_import(
    tmp_path,
    dicom_storage,  # noqa: F811
):
    """A FIFO left in a folder (or named on the command line) is listed as failed, not opened
    and waited on until something writes to it."""
    source = tmp_path / "with-fifo"
    source.mkdir()
    (source / "ct.dcm").write_bytes(data_of(CT))
    os.mkfifo(source / "pipe.dcm")
    os.mkfifo(tmp_path / "named.dcm")
    out = StringIO()

    with pytest.raises(CommandError):
        call_command(
            "import_dicom", str(source), str(tmp_path / "named.dcm"), stdout=out, stderr=StringIO()
        )

    text = out.getvalue()
    assert f"FAILED {source / 'pipe.dcm'}: " in text and "not a regular file (a FIFO)" in text
    assert f"FAILED {tmp_path / 'named.dcm'}: " in text
    assert "1 stored, 0 duplicate(s), 2 failed" in text
    assert DicomInstance.objects.count() == 1
