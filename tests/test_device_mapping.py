"""Every input format gives the same Observation, and it is the one the mapping table says."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from fhir.resources.R4B.observation import Observation

from devices import services
from devices.readings import parse_time
from fhir_api import json_io
from fhir_api.models import Resource

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
VITAL = {
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "vital-signs",
    "display": "Vital Signs",
}

# type -> (reading, LOINC, UCUM code, value stored), from ../shared/docs/clinical-reference.md
TABLE = {
    "heart_rate": ({"value": 72, "unit": "/min"}, "8867-4", "/min", Decimal(72)),
    "respiratory_rate": ({"value": 16, "unit": "/min"}, "9279-1", "/min", Decimal(16)),
    "oxygen_saturation": ({"value": 0.97, "unit": "1"}, "2708-6", "%", Decimal(97)),
    "body_temperature": ({"value": 98.6, "unit": "[degF]"}, "8310-5", "Cel", Decimal(37)),
    "body_weight": ({"value": 154.0, "unit": "[lb_av]"}, "29463-7", "kg", Decimal("69.9")),
    "body_height": ({"value": 170, "unit": "cm"}, "8302-2", "cm", Decimal(170)),
    "blood_glucose": ({"value": 5.5, "unit": "mmol/L"}, "41653-7", "mg/dL", Decimal("99.09")),
    "steps": ({"value": 1200, "unit": "{steps}"}, "55423-8", "{steps}", Decimal(1200)),
    "hrv_sdnn": ({"value": 45, "unit": "ms"}, "80404-7", "ms", Decimal(45)),
}


@pytest.fixture
def patient(db):
    from fhir_api import services as fhir

    return fhir.create(
        "Patient", {"resourceType": "Patient", "name": [{"family": "Map"}]}
    ).resource.logical_id


def device(identifier: str, patient: str):
    d = services.register_device(identifier)
    services.pair(d, patient, start=parse_time("2026-01-01T00:00:00Z"))
    return d


def stored() -> list[dict]:
    return [
        json_io.loads(r.content)
        for r in Resource.objects.filter(resource_type="Observation").order_by("pk")
    ]


@pytest.mark.parametrize("kind", sorted(TABLE))
def test_each_vital_maps_as_the_table_says_and_is_a_valid_observation(patient, kind):
    reading, loinc, unit, value = TABLE[kind]
    d = device("MAP-1", patient)
    from devices.adapters import parse_payload

    body = {
        "device": "MAP-1",
        "readings": [{"type": kind, "time": "2026-11-27T10:00:00Z", **reading}],
    }
    result = services.ingest(d, parse_payload(body), source="http")
    assert result.accepted == 1, result.rejected
    (obs,) = stored()
    Observation.model_validate(obs)
    assert obs["status"] == "final"
    assert obs["code"]["coding"][0] == {
        "system": LOINC,
        "code": loinc,
        "display": obs["code"]["coding"][0]["display"],
    }
    expected_category = "activity" if kind == "steps" else "vital-signs"
    assert obs["category"][0]["coding"][0]["code"] == expected_category
    assert obs["category"][1]["coding"][0]["code"] == "phd"
    assert obs["subject"] == {"reference": f"Patient/{patient}"}
    assert obs["device"] == {"reference": f"Device/{d.fhir_id}"}
    assert obs["effectiveDateTime"].startswith("2026-11-27T10:00:00")
    assert obs["valueQuantity"]["system"] == UCUM and obs["valueQuantity"]["code"] == unit
    assert obs["valueQuantity"]["value"] == value
    assert obs["identifier"][0]["system"] == "urn:clouddth:device-reading"
    if (reading["unit"] != unit and kind != "oxygen_saturation") or kind == "oxygen_saturation":
        original = obs.get("extension", [{}])[0].get("valueQuantity")
        assert original["code"] == reading["unit"]


def test_blood_pressure_is_a_panel_with_systolic_and_diastolic_components(patient):
    d = device("MAP-BP", patient)
    from devices.adapters import parse_payload

    body = {
        "readings": [
            {
                "type": "blood_pressure",
                "systolic": 142,
                "diastolic": 91,
                "unit": "mm[Hg]",
                "time": "2026-11-27T10:00:00Z",
            }
        ]
    }
    services.ingest(d, parse_payload(body), source="http")
    (obs,) = stored()
    Observation.model_validate(obs)
    assert obs["code"]["coding"][0]["code"] == "85354-9"
    assert [c["code"]["coding"][0]["code"] for c in obs["component"]] == ["8480-6", "8462-4"]
    assert [c["valueQuantity"]["value"] for c in obs["component"]] == [142, 91]
    assert all(c["valueQuantity"]["code"] == "mm[Hg]" for c in obs["component"])


@pytest.mark.parametrize("kind", ["fall", "irregular_rhythm", "battery"])
def test_device_events_are_valid_observations(patient, kind):
    d = device("MAP-EV", patient)
    from devices.adapters import parse_payload

    reading = {"type": kind, "time": "2026-11-27T10:00:00Z"}
    if kind == "battery":
        reading["value"] = 15
    result = services.ingest(d, parse_payload({"readings": [reading]}), source="http")
    assert result.accepted == 1
    (obs,) = stored()
    Observation.model_validate(obs)
    if kind == "battery":
        d.refresh_from_db()
        assert d.battery_level == 15


APPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<HealthData locale="en_GB">
 <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Watch" unit="count/min" startDate="2026-11-27 11:00:00 +0100" endDate="2026-11-27 11:00:00 +0100" value="72"/>
 <Record type="HKQuantityTypeIdentifierOxygenSaturation" sourceName="Watch" unit="%" startDate="2026-11-27 11:00:00 +0100" endDate="2026-11-27 11:00:00 +0100" value="0.97"/>
 <Record type="HKQuantityTypeIdentifierDietaryWater" sourceName="Phone" unit="mL" startDate="2026-11-27 11:00:00 +0100" endDate="2026-11-27 11:00:00 +0100" value="250"/>
 <Correlation type="HKCorrelationTypeIdentifierBloodPressure" startDate="2026-11-27 11:00:00 +0100" endDate="2026-11-27 11:00:00 +0100">
  <Record type="HKQuantityTypeIdentifierBloodPressureSystolic" unit="mmHg" startDate="2026-11-27 11:00:00 +0100" endDate="2026-11-27 11:00:00 +0100" value="128"/>
  <Record type="HKQuantityTypeIdentifierBloodPressureDiastolic" unit="mmHg" startDate="2026-11-27 11:00:00 +0100" endDate="2026-11-27 11:00:00 +0100" value="82"/>
 </Correlation>
</HealthData>
"""

CSV = (
    "type,value,unit,time,systolic,diastolic\n"
    "heart_rate,72,/min,2026-11-27T10:00:00Z,,\n"
    "oxygen_saturation,97,%,2026-11-27T10:00:00Z,,\n"
    "blood_pressure,,mm[Hg],2026-11-27T10:00:00Z,128,82\n"
)


def omh(name: str, body: dict) -> dict:
    return {
        "header": {
            "id": f"omh-{name}",
            "schema_id": {"namespace": "omh", "name": name, "version": "2.0"},
        },
        "body": {**body, "effective_time_frame": {"date_time": "2026-11-27T10:00:00Z"}},
    }


def _comparable(obs: dict) -> tuple:
    drop = {"id", "meta", "identifier", "device", "extension"}
    return json_io.dumps({k: v for k, v in sorted(obs.items()) if k not in drop}), obs["code"][
        "coding"
    ][0]["code"]


def test_every_input_format_gives_the_same_observations(patient, tmp_path):
    from devices.adapters import parse_payload

    native = {
        "readings": [
            {"type": "heart_rate", "value": 72, "unit": "/min", "time": "2026-11-27T10:00:00Z"},
            {"type": "oxygen_saturation", "value": 97, "unit": "%", "time": "2026-11-27T10:00:00Z"},
            {
                "type": "blood_pressure",
                "systolic": 128,
                "diastolic": 82,
                "unit": "mm[Hg]",
                "time": "2026-11-27T10:00:00Z",
            },
        ]
    }
    open_mhealth = [
        omh("heart-rate", {"heart_rate": {"value": 72, "unit": "beats/min"}}),
        omh("oxygen-saturation", {"oxygen_saturation": {"value": 97, "unit": "%"}}),
        omh(
            "blood-pressure",
            {
                "systolic_blood_pressure": {"value": 128, "unit": "mmHg"},
                "diastolic_blood_pressure": {"value": 82, "unit": "mmHg"},
            },
        ),
    ]
    services.ingest(device("FMT-NATIVE", patient), parse_payload(native), source="http")
    services.ingest(device("FMT-OMH", patient), parse_payload(open_mhealth), source="openmhealth")
    device("FMT-APPLE", patient)
    device("FMT-CSV", patient)
    (tmp_path / "export.xml").write_bytes(APPLE)
    (tmp_path / "r.csv").write_text(CSV)
    out = io.StringIO()
    call_command(
        "import_readings",
        str(tmp_path / "export.xml"),
        "--device",
        "FMT-APPLE",
        stdout=out,
        stderr=io.StringIO(),
    )
    call_command(
        "import_readings",
        str(tmp_path / "r.csv"),
        "--device",
        "FMT-CSV",
        stdout=out,
        stderr=io.StringIO(),
    )
    groups: dict[str, list] = {}
    for obs in stored():
        device_id = obs["device"]["reference"]
        groups.setdefault(device_id, []).append(_comparable(obs))
    assert len(groups) == 4
    first, *others = (sorted(g, key=lambda x: x[1]) for g in groups.values())
    assert len(first) == 3
    for other in others:
        assert other == first
