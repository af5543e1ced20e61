#!/usr/bin/env python
"""DICOM intake: instances/s of ``manage.py import_dicom`` and the time to render a preview.

    .venv/bin/python bench/dicom.py                      # 5 rounds on PostgreSQL
    .venv/bin/python bench/dicom.py --rounds 9 --database-url postgres://postgres@127.0.0.1:5432/x

Uses (creates and migrates when missing) the PostgreSQL database ``clouddth_bench_dicom`` unless
``--database-url`` names another, and a DICOM storage in a temporary folder of its own.

Import: the DICOM files that ship in the pydicom wheel are copied to a temporary folder, as two
sets: "small", the dicomdirtests set (81 instances of 2–4 KB: CT, MR, CR of four patients), and
"all", every file of ``pydicom/data/test_files`` (including the files that fail: not DICOM,
truncated, without UIDs, and the encodings of one MR that share its SOPInstanceUID). A Patient is
made for each DICOM PatientID first, so studies are linked and their ImagingStudy written (the
full path). Each round starts from nothing (the imaging rows and ImagingStudy resources deleted,
a fresh storage folder), so no file is a duplicate of an earlier round, and runs
``call_command("import_dicom", folder)`` in this process. Printed per set: the median over the
rounds of files/s, stored instances/s and this process's CPU milliseconds per stored instance
(steadier than rates on a busy machine; PostgreSQL's share is not in it), against a floor measured in the same run over the same
files: read each file, parse it with pydicom and write its bytes to a new file (no database).

Preview: the median of ``--renders`` calls of ``imaging.preview.render_stored`` (read the stored
file, decode the first frame, window, encode the PNG; the preview cache is bypassed) for a few
kinds of instance, against pydicom's decoding of the same frame alone (``pixel_array``).

The machine is shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from statistics import median

from common import django_on  # bench/ is not a package: its directory is on sys.path

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/clouddth_bench_dicom"
PREVIEWS = (
    "CT_small.dcm",
    "MR_small.dcm",
    "dicomdirtests/77654033/CT2/17136",
    "examples_rgb_color.dcm",
    "rtdose.dcm",
)


def setup(database_url: str, storage: Path) -> None:
    os.environ["DICOM_STORAGE_DIR"] = str(storage)
    django_on(database_url, SECRET_KEY="bench-dicom-" + "x" * 40, LOG_LEVEL="ERROR")


def test_files_root() -> Path:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("CT_small.dcm", download=False)).parent


def copy_sets(target: Path) -> dict[str, Path]:
    root = test_files_root()
    small = target / "small"
    shutil.copytree(root / "dicomdirtests", small)
    for index in [p for p in small.rglob("*") if p.is_file()]:
        if index.name.upper().startswith(("DICOMDIR", "README")):
            index.unlink()
    everything = target / "all"
    shutil.copytree(root, everything)
    return {"small": small, "all": everything}


def make_patients(folders: list[Path]) -> int:
    import pydicom
    from django.conf import settings

    from fhir_api import services as store
    from fhir_api.search.query import match_ids

    ids = set()
    for folder in folders:
        for path in folder.rglob("*"):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
                if ds.get("PatientID"):
                    ids.add(str(ds.PatientID))
            except Exception:
                continue
    system = settings.DICOM_PATIENT_ID_SYSTEM
    for dicom_id in sorted(ids):
        if match_ids("Patient", f"identifier={system}|{dicom_id}", limit=1):
            continue
        store.create(
            "Patient",
            {"resourceType": "Patient", "identifier": [{"system": system, "value": dicom_id}]},
        )
    return len(ids)


def reset(storage: Path) -> None:
    """Nothing imaged: no instance, study or ImagingStudy rows, an empty storage folder."""
    from django.db import connection, transaction

    from fhir_api.models import Resource
    from imaging.models import DicomInstance, DicomStudy

    with transaction.atomic():
        DicomInstance.objects.all().delete()
        DicomStudy.objects.all().delete()
        Resource.objects.filter(resource_type="ImagingStudy").delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    shutil.rmtree(storage, ignore_errors=True)
    storage.mkdir(parents=True)


def import_round(folder: Path) -> tuple[float, float, int, int]:
    """(seconds, CPU seconds of this process, files, stored instances) of one import_dicom run."""
    from django.core.management import CommandError, call_command

    from imaging.models import DicomInstance

    files = sum(1 for p in folder.rglob("*") if p.is_file())
    out = io.StringIO()
    cpu = time.process_time()
    start = time.perf_counter()
    # Some of pydicom's files are meant to fail, which makes the command exit 1.
    with contextlib.suppress(CommandError):
        call_command("import_dicom", str(folder), stdout=out, stderr=io.StringIO())
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    return seconds, cpu, files, DicomInstance.objects.count()


def floor_round(folder: Path, out: Path) -> float:
    """Read, parse with pydicom and write each file to a new one: no database."""
    import warnings

    import pydicom

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    for number, path in enumerate(sorted(p for p in folder.rglob("*") if p.is_file())):
        data = path.read_bytes()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pydicom.dcmread(io.BytesIO(data))
        except Exception:
            continue
        target = out / f"{number}.dcm"
        with open(target, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return time.perf_counter() - start


def bench_import(sets: dict[str, Path], storage: Path, scratch: Path, rounds: int) -> None:
    print(f"\nimport_dicom, {rounds} rounds each from nothing (median):")
    header = (
        f"{'set':<6} {'files':>6} {'stored':>7} {'import s':>9} {'files/s':>8}"
        f" {'inst/s':>8} {'CPU ms/inst':>12} {'floor files/s':>14} {'import/floor':>13}"
    )
    print(header)
    for label, folder in sets.items():
        times, cpus, floors, stored, files = [], [], [], 0, 0
        for _ in range(rounds):
            reset(storage)
            seconds, cpu, files, stored = import_round(folder)
            times.append(seconds)
            cpus.append(cpu)
            floors.append(floor_round(folder, scratch / "floor"))
        t, f, c = median(times), median(floors), median(cpus)
        print(
            f"{label:<6} {files:>6} {stored:>7} {t:>9.3f} {files / t:>8.1f} {stored / t:>8.1f}"
            f" {c * 1000 / stored:>12.2f} {files / f:>14.1f} {f / t:>13.2f}"
        )
    print("target (issue 7): >= 100 instances/s for small files")


def bench_preview(renders: int) -> None:
    import warnings

    import pydicom
    from pydicom.data import get_testdata_file

    from imaging.models import DicomInstance
    from imaging.preview import render_stored
    from imaging.services import store_files

    print(f"\npreview (render_stored, no cache), median of {renders} calls:")
    print(f"{'instance':<40} {'render ms':>10} {'decode ms':>10} {'render/decode':>14}")
    for name in PREVIEWS:
        data = Path(get_testdata_file(name, download=False)).read_bytes()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data))
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        label = (
            f"{name.rsplit('/', 1)[-1]} {ds.Modality} {ds.Columns}x{ds.Rows}"
            f" {ds.BitsAllocated}-bit" + (f" {frames} frames" if frames > 1 else "")
        )
        store_files([(name, data)])
        instance = DicomInstance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
        render, decode = [], []
        for _ in range(renders):
            start = time.perf_counter()
            png = render_stored(instance)
            render.append(time.perf_counter() - start)
            start = time.perf_counter()
            fresh = pydicom.dcmread(io.BytesIO(data))
            if int(fresh.get("NumberOfFrames", 1) or 1) > 1:
                from pydicom.pixels import pixel_array

                pixel_array(io.BytesIO(data), index=0)
            else:
                _ = fresh.pixel_array
            decode.append(time.perf_counter() - start)
        assert png.startswith(b"\x89PNG")
        r, d = median(render) * 1000, median(decode) * 1000
        print(f"{label:<40} {r:>10.2f} {d:>10.2f} {r / d:>14.2f}")


def main() -> None:
    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--renders", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dicom-") as temp:
        scratch = Path(temp)
        storage = scratch / "storage"
        setup(args.database_url, storage)
        # pydicom warns about the odd test files (wrong VRs, big endian); the figures are the point.
        logging.getLogger("pydicom").setLevel(logging.ERROR)
        sets = copy_sets(scratch / "files")
        one, five, fifteen = os.getloadavg()
        print(f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores")
        patients = make_patients(list(sets.values()))
        print(f"{patients} Patients carry the files' PatientIDs (studies are linked)")
        bench_import(sets, storage, scratch, args.rounds)
        reset(storage)
        bench_preview(args.renders)
        reset(storage)
        one, five, fifteen = os.getloadavg()
        print(f"\nload average {one:.2f} {five:.2f} {fifteen:.2f} at the end")


if __name__ == "__main__":
    main()
