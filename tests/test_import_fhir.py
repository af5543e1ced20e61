"""``manage.py import_fhir``: bundles and NDJSON in, counts and rejections out, resumable."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from fhir_api import json_io
from fhir_api.importer import Importer
from fhir_api.models import ImportFile, ImportRejection, Resource


def patient(i: int) -> dict:
    return {
        "resourceType": "Patient",
        "id": f"nd-{i}",
        "identifier": [{"system": "urn:test:mrn", "value": f"MRN{i}"}],
        "name": [{"family": f"Family{i}"}],
        "birthDate": "1940-01-01",
    }


def write_ndjson(path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def ndjson(tmp_path):
    path = tmp_path / "Patient.ndjson"
    lines = [json_io.dumps(patient(i)) for i in range(1, 8)]
    lines.insert(3, '{"resourceType": "Patient", "id": "bad-1", "birthDate": "not a date"}')
    lines.insert(5, "{this is not json")
    write_ndjson(path, lines)
    return path


def test_ndjson_lines_are_stored_with_their_ids_and_bad_lines_kept_with_reasons(db, ndjson):
    out = io.StringIO()
    call_command("import_fhir", str(ndjson), stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    assert "Patient: 7" in text
    assert "2 rejected" in text
    ids = set(Resource.objects.filter(resource_type="Patient").values_list("logical_id", flat=True))
    assert ids == {f"nd-{i}" for i in range(1, 8)}
    rejections = {r.position: r for r in ImportRejection.objects.all()}
    assert set(rejections) == {"line 4", "line 6"}
    assert "birthDate" in rejections["line 4"].reason
    assert rejections["line 6"].raw.startswith("{this is not json")
    assert "not valid JSON" in rejections["line 6"].reason


def test_rerun_skips_a_finished_file(db, ndjson):
    call_command("import_fhir", str(ndjson), stdout=io.StringIO(), stderr=io.StringIO())
    out = io.StringIO()
    call_command("import_fhir", str(ndjson), stdout=out, stderr=io.StringIO())
    assert "skipped (already imported)" in out.getvalue()
    # Nothing written twice: every patient is still at version 1.
    assert set(Resource.objects.values_list("version_id", flat=True)) == {1}


def test_an_interrupted_import_resumes_after_the_last_committed_batch(db, tmp_path):
    path = tmp_path / "many.ndjson"
    write_ndjson(path, [json_io.dumps(patient(i)) for i in range(1, 11)])
    calls = {"n": 0}

    def stop_after_first_batch(_size: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # like Ctrl-C once the second batch has committed
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Importer(progress=stop_after_first_batch).run([str(path)], batch=3)
    record = ImportFile.objects.get()
    assert record.done == 6 and not record.complete
    assert Resource.objects.count() == 6

    report = Importer().run([str(path)], batch=3)
    assert report.written["Patient"] == 4
    assert Resource.objects.count() == 10
    assert set(Resource.objects.values_list("version_id", flat=True)) == {1}
    assert ImportFile.objects.get().complete


def test_a_failing_transaction_bundle_writes_nothing_and_is_reported(db, tmp_path):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111",
                "resource": {"resourceType": "Patient", "name": [{"family": "Ok"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "not-a-status-type",
                    "code": 5,
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    path = tmp_path / "bundle.json"
    path.write_text(json_io.dumps(bundle))
    out = io.StringIO()
    call_command("import_fhir", str(tmp_path), stdout=out, stderr=io.StringIO())
    assert Resource.objects.count() == 0
    assert "REJECTED" in out.getvalue() and "entry 1" in out.getvalue()
    assert ImportRejection.objects.get().position == "transaction"


def test_missing_path_is_a_clear_error(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No such file"):
        call_command("import_fhir", "/nonexistent/x.ndjson", stdout=io.StringIO())
