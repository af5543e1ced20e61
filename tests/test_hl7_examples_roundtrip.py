"""Every official HL7 R4 example under ``tests/data/hl7-examples`` survives create and read intact.

What is written comes back: every element, in full, with decimals in their exact text
(``72.50`` stays ``72.50``, ``1E-22`` stays ``1E-22``; hl7.org/fhir/R4B/json.html#primitive),
and the client's ``meta`` (profiles, tags, security labels) kept; only ``id`` (a create assigns
its own), ``meta.versionId`` and ``meta.lastUpdated`` are the server's. A sample also goes
through update (PUT with the example's own id), which keeps the id too.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import simplejson

from fhir_api import json_io

EXAMPLES_DIR = Path(__file__).parent / "data" / "hl7-examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.json"))
SERVER_META = ("versionId", "lastUpdated")
# Every tenth example and the one made to test decimals go through update as well.
PUT_SAMPLE = sorted({*EXAMPLES[::10], EXAMPLES_DIR / "Observation-decimal.json"})


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """One user per test (the ``api`` fixture); a fast hasher keeps 300 tests quick."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def exact(value: Any) -> Any:
    """``value`` made comparable without loss: a Decimal by its text (``1.00`` is not ``1.0``),
    and booleans, whole numbers and decimals never equal to one another."""
    if isinstance(value, dict):
        return {key: exact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [exact(item) for item in value]
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int):
        return ("integer", value)
    if isinstance(value, Decimal):
        return ("decimal", str(value))
    return value


def without_server_fields(resource: dict[str, Any], *, keep_id: bool = False) -> dict[str, Any]:
    """The resource minus what the server sets: id (unless kept), meta.versionId/lastUpdated."""
    result = dict(resource)
    if not keep_id:
        result.pop("id", None)
    meta = {k: v for k, v in result.pop("meta", {}).items() if k not in SERVER_META}
    if meta:
        result["meta"] = meta
    return result


def decimal_texts(text: str | bytes) -> list[str]:
    """The text of every JSON number with a fraction or exponent, as written."""
    found: list[str] = []
    simplejson.loads(text, parse_float=lambda literal: found.append(literal) or 0.0)
    return found


def assert_same_content(read_body: bytes, original: dict[str, Any], *, keep_id: bool) -> None:
    stored = json_io.loads(read_body)
    assert exact(without_server_fields(stored, keep_id=keep_id)) == exact(
        without_server_fields(original, keep_id=keep_id)
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_create_then_read_returns_the_example_unchanged(api, path: Path):
    text = path.read_bytes()
    original = json_io.loads(text)
    resource_type = original["resourceType"]

    created = api.fhir("POST", f"/fhir/{resource_type}", text)

    assert created.status_code == 201, created.json_body
    new_id = created.json_body["id"]
    assert created["Location"].endswith(f"/fhir/{resource_type}/{new_id}/_history/1")
    read = api.fhir("GET", f"/fhir/{resource_type}/{new_id}")
    assert read.status_code == 200, read.json_body
    assert read["ETag"] == 'W/"1"'
    assert read.json_body["id"] == new_id
    assert read.json_body["meta"]["versionId"] == "1"
    assert_same_content(read.content, original, keep_id=False)
    # Every decimal is written back byte for byte, e.g. "value":72.50 not 72.5.
    for literal in decimal_texts(text):
        assert re.search(rb"[:\[,]" + re.escape(literal.encode()) + rb"[,\]}]", read.content), (
            f"decimal {literal} lost"
        )
    assert sorted(decimal_texts(read.content)) == sorted(decimal_texts(text))


@pytest.mark.parametrize("path", PUT_SAMPLE, ids=[p.stem for p in PUT_SAMPLE])
def test_update_with_the_example_id_then_read_returns_it_unchanged(api, path: Path):
    text = path.read_bytes()
    original = json_io.loads(text)
    url = f"/fhir/{original['resourceType']}/{original['id']}"

    first = api.fhir("PUT", url, text)
    second = api.fhir("PUT", url, text)

    assert first.status_code == 201, first.json_body  # update as create
    assert second.status_code == 200, second.json_body
    read = api.fhir("GET", url)
    assert read.status_code == 200
    assert read["ETag"] == 'W/"2"'
    assert read.json_body["id"] == original["id"]
    assert_same_content(read.content, original, keep_id=True)
    assert sorted(decimal_texts(read.content)) == sorted(decimal_texts(text))
    version_1 = api.fhir("GET", f"{url}/_history/1")
    assert_same_content(version_1.content, original, keep_id=True)


def test_decimal_example_keeps_every_decimal_text(api):
    """Observation-decimal.json: the HL7 example made to catch precision loss."""
    text = (EXAMPLES_DIR / "Observation-decimal.json").read_bytes()

    created = api.fhir("POST", "/fhir/Observation", text)
    read = api.fhir("GET", f"/fhir/Observation/{created.json_body['id']}")

    values = [
        b'"value":1.0,',
        b'"value":1.00,',
        b'"value":1E-22,',
        b'"value":1000000000000000000,',
        b'"value":1.000000000000000000E-245,',
        b'"value":-1.000000000000000000E+245,',
    ]
    for body in (created.content, read.content):
        for value in values:
            assert value in body


def test_meta_profile_tag_and_security_are_kept(api):
    """The client's meta survives; only versionId and lastUpdated are replaced."""
    meta = {
        "versionId": "17",
        "lastUpdated": "2012-05-29T23:45:32Z",
        "source": "http://hospital.example/ehr",
        "profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"],
        "tag": [{"system": "http://hospital.example/tags", "code": "triage"}],
        "security": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
        ],
    }
    body = {
        "resourceType": "Observation",
        "meta": meta,
        "status": "final",
        "code": {"text": "Heart rate"},
        "valueQuantity": {"value": Decimal("72.50"), "unit": "/min"},
    }

    created = api.fhir("POST", "/fhir/Observation", body)
    read = api.fhir("GET", f"/fhir/Observation/{created.json_body['id']}")

    stored = read.json_body["meta"]
    assert stored["versionId"] == "1"
    assert stored["lastUpdated"] != meta["lastUpdated"]
    assert {k: v for k, v in stored.items() if k not in SERVER_META} == {
        k: v for k, v in meta.items() if k not in SERVER_META
    }
    assert b'"value":72.50' in read.content
