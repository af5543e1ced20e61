"""Codes of required bindings are checked on every write (hl7.org/fhir/R4B/terminologies.html
#required): a code outside the value set is a 422 naming the element and the allowed codes, and
nothing is written."""

from __future__ import annotations

import base64
import io
from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from devices.mapping import BLOOD_PRESSURE, EVENTS, MEASURES
from devices.readings import Reading, check, observation
from fhir_api import bindings, json_io
from fhir_api.models import Resource, ResourceVersion

from .search_support import VITAL_SIGNS

JSON_PATCH = "application/json-patch+json"


def heart_rate(**changes) -> dict:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "category": VITAL_SIGNS,
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "effectiveDateTime": "2026-11-27T08:30:00Z",
        "valueQuantity": {
            "value": 72,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }
    obs.update(changes)
    return obs


def assert_invalid_code(response, path: str, *allowed: str) -> None:
    assert response.status_code == 422, response.content
    body = response.json_body
    assert body["resourceType"] == "OperationOutcome"
    issues = [i for i in body["issue"] if i.get("expression") == [path]]
    assert issues, body
    assert issues[0]["code"] == "code-invalid"
    for code in allowed:
        assert code in issues[0]["diagnostics"]


def test_create_with_a_code_outside_a_required_value_set_is_422(api):
    r = api.fhir("POST", "/fhir/Patient", {"resourceType": "Patient", "gender": "robot"})
    assert_invalid_code(r, "Patient.gender", "male", "female", "other", "unknown")
    assert "robot" in r.json_body["issue"][0]["diagnostics"]
    assert not Resource.objects.exists()


def test_every_allowed_code_is_accepted(api):
    for gender in ("male", "female", "other", "unknown"):
        body = {"resourceType": "Patient", "gender": gender}
        assert api.fhir("POST", "/fhir/Patient", body).status_code == 201


def test_nested_and_repeated_coded_elements_are_checked(api):
    body = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": "A"}, {"use": "nick", "family": "B"}],
        "telecom": [{"system": "pager", "value": "1"}, {"system": "pigeon", "value": "2"}],
    }
    r = api.fhir("POST", "/fhir/Patient", body)
    assert_invalid_code(r, "Patient.name[1].use", "nickname")
    assert_invalid_code(r, "Patient.telecom[1].system", "phone", "email")
    assert len(r.json_body["issue"]) == 2


def test_quantity_comparator_and_observation_status(api):
    bad = heart_rate(status="done", valueQuantity={"value": 72, "comparator": "~"})
    r = api.fhir("POST", "/fhir/Observation", bad)
    assert_invalid_code(r, "Observation.status", "final", "corrected", "entered-in-error")
    assert_invalid_code(r, "Observation.valueQuantity.comparator", "<=", ">=")


def test_codes_beyond_the_models_short_lists_are_accepted(api):
    # The model's list for Observation.status ends in "+": corrected, cancelled, … are codes too.
    for status in ("corrected", "cancelled", "entered-in-error", "unknown"):
        assert api.fhir("POST", "/fhir/Observation", heart_rate(status=status)).status_code == 201


def test_contained_resources_are_checked(api):
    body = heart_rate(
        contained=[{"resourceType": "Patient", "id": "p1", "gender": "robot"}],
        subject={"reference": "#p1"},
    )
    r = api.fhir("POST", "/fhir/Observation", body)
    assert_invalid_code(r, "Observation.contained[0].gender", "female")


def test_update_is_checked(api):
    pid = api.fhir("POST", "/fhir/Patient", {"resourceType": "Patient"}).json_body["id"]
    r = api.fhir(
        "PUT", f"/fhir/Patient/{pid}", {"resourceType": "Patient", "id": pid, "gender": "x"}
    )
    assert_invalid_code(r, "Patient.gender", "female")
    assert ResourceVersion.objects.filter(logical_id=pid).count() == 1


def test_a_patch_that_leaves_an_invalid_code_is_422(api):
    pid = api.fhir("POST", "/fhir/Patient", {"resourceType": "Patient"}).json_body["id"]
    ops = [{"op": "add", "path": "/gender", "value": "robot"}]
    r = api.fhir("PATCH", f"/fhir/Patient/{pid}", ops, content_type=JSON_PATCH)
    assert_invalid_code(r, "Patient.gender", "female")
    assert "gender" not in api.fhir("GET", f"/fhir/Patient/{pid}").json_body


def test_a_transaction_with_an_invalid_code_writes_nothing(api):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "gender": "female"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": heart_rate(status="done"),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    r = api.fhir("POST", "/fhir", bundle)
    assert r.status_code == 422, r.content
    assert "Observation.status" in r.json_body["issue"][0]["diagnostics"]
    assert not Resource.objects.exists()


def test_a_batch_entry_with_an_invalid_code_fails_alone(api):
    patch = json_io.dumps([{"op": "add", "path": "/gender", "value": "robot"}])
    pid = api.fhir("POST", "/fhir/Patient", {"resourceType": "Patient"}).json_body["id"]
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": heart_rate(), "request": {"method": "POST", "url": "Observation"}},
            {
                "resource": heart_rate(status="done"),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": {
                    "resourceType": "Binary",
                    "contentType": JSON_PATCH,
                    "data": base64.b64encode(patch.encode()).decode(),
                },
                "request": {"method": "PATCH", "url": f"Patient/{pid}"},
            },
        ],
    }
    r = api.fhir("POST", "/fhir", bundle)
    assert r.status_code == 200, r.content
    statuses = [e["response"]["status"][:3] for e in r.json_body["entry"]]
    assert statuses == ["201", "422", "422"]
    assert Resource.objects.filter(resource_type="Observation").count() == 1


def test_import_rejects_an_invalid_code_and_keeps_the_rest(db, tmp_path):
    lines = [
        {"resourceType": "Patient", "id": "ok-1", "gender": "male"},
        {"resourceType": "Patient", "id": "bad-1", "gender": "robot"},
    ]
    path = tmp_path / "patients.ndjson"
    path.write_text("\n".join(json_io.dumps(line) for line in lines) + "\n")
    call_command("import_fhir", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    stored = set(Resource.objects.values_list("logical_id", flat=True))
    assert stored == {"ok-1"}


def test_primitive_extension_without_a_value_is_accepted(api):
    body = {
        "resourceType": "Patient",
        "_gender": {"extension": [{"url": "http://example.org/why", "valueString": "asked"}]},
    }
    assert api.fhir("POST", "/fhir/Patient", body).status_code == 201


def _device_readings() -> list[Reading]:
    at = timezone.now() - timedelta(hours=1)
    readings = []
    for m in MEASURES.values():
        for value in (m.low, (m.low + m.high) / 2, m.high):
            readings.append(Reading(m.type, at, value=value, unit=m.unit))
    low, high = BLOOD_PRESSURE.low, BLOOD_PRESSURE.high
    for sys_v, dia_v in ((high, low), (120, 80), (low + 1, low)):
        readings.append(
            Reading("blood_pressure", at, systolic=sys_v, diastolic=dia_v, unit="mm[Hg]")
        )
    for kind in EVENTS:
        readings.append(Reading(kind, at, value=50 if kind == "battery" else None))
    return readings


def test_device_observations_only_carry_allowed_codes():
    """The devices app builds Observations by construction (validate=False on its bulk path):
    every reading type, at the edges of its range, gives only codes its bindings allow."""
    for reading in _device_readings():
        obs = observation(
            check(reading), patient="p", device_fhir_id="d", key="k", gateway_fhir_id="g"
        )
        assert bindings.check(json_io.loads(json_io.dumps(obs)), "Observation") == [], reading
