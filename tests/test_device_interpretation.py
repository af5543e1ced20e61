"""Each stored vital value says whether it is normal, low, high or critical, and by what range.

../shared/docs/clinical-reference.md: ``Observation.interpretation`` (v3-ObservationInterpretation)
and ``referenceRange`` holding the thresholds applied: the patient's own alert thresholds where
a clinician set them, else the NEWS2 bands (score 0 normal, 1–2 low/high, 3 critical), else the
twin's default alert thresholds. Checked field by field at every band edge, through the ingest.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from fhir.resources.R4B.observation import Observation

from devices import services
from devices.adapters import parse_payload
from devices.readings import parse_time
from fhir_api import json_io
from fhir_api.models import Resource
from twins import news2
from twins.models import PatientTwin

V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
UCUM = "http://unitsofmeasure.org"
NORMAL_TYPE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/referencerange-meaning",
            "code": "normal",
            "display": "Normal Range",
        }
    ]
}
DISPLAY = {"N": "Normal", "L": "Low", "H": "High", "LL": "Critical low", "HH": "Critical high"}

# vital -> (unit code, unit shown, normal (low, high), not critical (low, high), name)
NEWS2 = {
    "heart_rate": ("/min", "beats/minute", (51, 90), (41, 130), "NEWS2 pulse"),
    "respiratory_rate": ("/min", "breaths/minute", (12, 20), (9, 24), "NEWS2 respiration rate"),
    "oxygen_saturation": ("%", "%", (96, None), (92, None), "NEWS2 SpO2 scale 1"),
    "body_temperature": ("Cel", "C", (Decimal("36.1"), 38), (Decimal("35.1"), None), "NEWS2 temperature"),
    "systolic": ("mm[Hg]", "mmHg", (111, 219), (91, 219), "NEWS2 systolic blood pressure"),
}  # fmt: skip
# Values on each side of every band edge of the clinical reference's NEWS2 table, and the
# interpretation each must get.
EDGES = {
    "heart_rate": [(40, "LL"), (41, "L"), (50, "L"), (51, "N"), (90, "N"), (91, "H"),
                   (130, "H"), (131, "HH")],
    "respiratory_rate": [(8, "LL"), (9, "L"), (11, "L"), (12, "N"), (20, "N"), (21, "H"),
                         (24, "H"), (25, "HH")],
    "oxygen_saturation": [(91, "LL"), (92, "L"), (95, "L"), (96, "N"), (100, "N")],
    "body_temperature": [(35.0, "LL"), (35.1, "L"), (36.0, "L"), (36.1, "N"), (38.0, "N"),
                         (38.1, "H"), (39.0, "H"), (39.1, "H"), (41.0, "H")],
    "systolic": [(90, "LL"), (91, "L"), (110, "L"), (111, "N"), (219, "N"), (220, "HH")],
}  # fmt: skip
NEWS2_SCORE = {
    "heart_rate": news2.pulse,
    "respiratory_rate": news2.respiration,
    "oxygen_saturation": news2.spo2_scale1,
    "body_temperature": news2.temperature,
    "systolic": news2.systolic,
}
TIME = "2026-11-27T10:00:00Z"


@pytest.fixture
def patient(db) -> str:
    from fhir_api import services as fhir

    return fhir.create(
        "Patient", {"resourceType": "Patient", "name": [{"family": "Range"}]}
    ).resource.logical_id


def _device(patient: str, serial: str = "RANGE-1"):
    device = services.register_device(serial)
    services.pair(device, patient, start=parse_time("2026-01-01T00:00:00Z"))
    return device


def _send(device, readings: list[dict]) -> list[dict]:
    """Ingest ``readings`` (each at its own second) and the stored Observations, in order."""
    body = []
    for i, reading in enumerate(readings):
        body.append({"time": f"2026-11-27T10:{i // 60:02d}:{i % 60:02d}Z", **reading})
    result = services.ingest(device, parse_payload({"readings": body}), source="http")
    assert result.accepted == len(readings), result.rejected
    stored = {
        r.logical_id: json_io.loads(r.content)
        for r in Resource.objects.filter(resource_type="Observation", logical_id__in=result.observation_ids)
    }  # fmt: skip
    out = [stored[i] for i in result.observation_ids]
    for obs in out:
        Observation.model_validate(obs)
    return sorted(out, key=lambda o: o["effectiveDateTime"])


def _reading(vital: str, value) -> dict:
    if vital == "systolic":
        return {"type": "blood_pressure", "systolic": value, "diastolic": 60, "unit": "mm[Hg]"}
    return {"type": vital, "value": value, "unit": NEWS2[vital][0]}


def _valued(obs: dict, vital: str) -> dict:
    """The element holding the vital's value: the Observation, or its blood-pressure component."""
    if vital in ("systolic", "diastolic"):
        return obs["component"][0 if vital == "systolic" else 1]
    return obs


def _quantity(value, unit_code: str, unit: str) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit_code}


def _bounds(low, high, code: str, unit: str) -> dict:
    out = {}
    if low is not None:
        out["low"] = _quantity(low, code, unit)
    if high is not None:
        out["high"] = _quantity(high, code, unit)
    return out


def _direction(score: int, value: float, normal: tuple) -> str:
    """What NEWS2's score of a value means as an interpretation code."""
    if score == 0:
        return "N"
    low = normal[0] is not None and value < normal[0]
    return ("LL" if low else "HH") if score == 3 else ("L" if low else "H")


@pytest.mark.parametrize("vital", sorted(EDGES))
def test_news2_vitals_are_interpreted_by_their_band_at_every_edge(patient, vital):
    code, unit, normal, safe, name = NEWS2[vital]
    observations = _send(_device(patient), [_reading(vital, v) for v, _c in EDGES[vital]])
    for (value, expected), obs in zip(EDGES[vital], observations, strict=True):
        element = _valued(obs, vital)
        assert element["valueQuantity"]["value"] == Decimal(str(value))
        assert element["interpretation"] == [
            {"coding": [{"system": V3, "code": expected, "display": DISPLAY[expected]}]}
        ], f"{vital} {value}"
        # the twin's NEWS2 scores the value the same way
        assert _direction(NEWS2_SCORE[vital](value), value, normal) == expected, value
        assert element["referenceRange"] == [
            {**_bounds(*normal, code, unit), "type": NORMAL_TYPE, "text": f"{name} scores 0"},
            {**_bounds(*safe, code, unit), "text": f"{name} scores below 3; critical outside"},
        ]
    if vital == "systolic":  # the diastolic component has the twin's default threshold
        assert all("interpretation" in o["component"][1] for o in observations)


def test_values_between_whole_edges_read_as_news2_scores_them(patient):
    """Wearables send decimals: 90.5 /min scores 1 in NEWS2, so it is high, 50.5 scores 0."""
    readings = [
        {"type": "heart_rate", "value": 90.5, "unit": "/min"},
        {"type": "heart_rate", "value": 50.5, "unit": "/min"},
        {"type": "respiratory_rate", "value": 20.4, "unit": "/min"},
        {"type": "body_temperature", "value": 100.4, "unit": "[degF]"},  # 38.0 °C
    ]
    observations = _send(_device(patient), readings)
    codes = [o["interpretation"][0]["coding"][0]["code"] for o in observations]
    assert codes == ["H", "N", "H", "N"]
    assert news2.pulse(90.5) == 1 and news2.pulse(50.5) == 0 and news2.respiration(20.4) == 2


def test_a_clinicians_thresholds_replace_the_news2_bands_for_that_vital(patient):
    PatientTwin.objects.create(patient_id=patient, thresholds={"heart_rate": {"high": 120}})
    observations = _send(
        _device(patient),
        [
            {"type": "heart_rate", "value": 39, "unit": "/min"},
            {"type": "heart_rate", "value": 40, "unit": "/min"},
            {"type": "heart_rate", "value": 120, "unit": "/min"},
            {"type": "heart_rate", "value": 121, "unit": "/min"},
            {"type": "respiratory_rate", "value": 25, "unit": "/min"},
        ],
    )
    rng = [
        {
            **_bounds(40, 120, "/min", "beats/minute"),
            "type": NORMAL_TYPE,
            "text": "Alert thresholds set for this patient",
        }
    ]
    for obs, expected in zip(observations[:4], ["L", "N", "N", "H"], strict=True):
        assert obs["interpretation"][0]["coding"][0]["code"] == expected
        assert obs["referenceRange"] == rng
    # the other vitals keep the NEWS2 bands
    assert observations[4]["interpretation"][0]["coding"][0]["code"] == "HH"
    assert observations[4]["referenceRange"][0]["text"] == "NEWS2 respiration rate scores 0"


@pytest.mark.parametrize(
    ("on_oxygen", "expected", "normal", "name"),
    [
        (True, ["LL", "L", "N", "N", "H", "H", "HH"], (88, 92), "NEWS2 SpO2 scale 2, on oxygen"),
        (False, ["LL", "L", "N", "N", "N", "N", "N"], (88, None), "NEWS2 SpO2 scale 2, on air"),
        (None, ["LL", "L", "N", "N", "N", "N", "N"], (88, None), "NEWS2 SpO2 scale 2, on air"),
    ],
)
def test_spo2_on_scale_2_reads_by_oxygen(patient, on_oxygen, expected, normal, name):
    PatientTwin.objects.create(patient_id=patient, news2_scale=2, on_oxygen=on_oxygen)
    values = [83, 84, 88, 92, 93, 96, 97]
    observations = _send(
        _device(patient), [{"type": "oxygen_saturation", "value": v, "unit": "%"} for v in values]
    )
    assert [o["interpretation"][0]["coding"][0]["code"] for o in observations] == expected
    assert observations[0]["referenceRange"][0] == {
        **_bounds(*normal, "%", "%"),
        "type": NORMAL_TYPE,
        "text": f"{name} scores 0",
    }
    scored = [news2.spo2_scale2(v, bool(on_oxygen)) for v in values]
    assert [_direction(s, v, normal) for s, v in zip(scored, values, strict=True)] == expected


def test_vitals_news2_does_not_score_use_the_twins_default_thresholds(patient):
    observations = _send(
        _device(patient),
        [
            {"type": "blood_glucose", "value": 69, "unit": "mg/dL"},
            {"type": "blood_glucose", "value": 70, "unit": "mg/dL"},
            {"type": "blood_glucose", "value": 300, "unit": "mg/dL"},
            {"type": "blood_glucose", "value": 301, "unit": "mg/dL"},
            {"type": "blood_pressure", "systolic": 150, "diastolic": 120, "unit": "mm[Hg]"},
            {"type": "blood_pressure", "systolic": 190, "diastolic": 121, "unit": "mm[Hg]"},
        ],
    )
    codes = [o["interpretation"][0]["coding"][0]["code"] for o in observations[:4]]
    assert codes == ["L", "N", "N", "H"]
    assert observations[0]["referenceRange"] == [
        {
            **_bounds(70, 300, "mg/dL", "mg/dL"),
            "type": NORMAL_TYPE,
            "text": "Alert thresholds (default)",
        }
    ]
    diastolic = [o["component"][1] for o in observations[4:]]
    assert [d["interpretation"][0]["coding"][0]["code"] for d in diastolic] == ["N", "H"]
    assert diastolic[0]["referenceRange"] == [
        {**_bounds(None, 120, "mm[Hg]", "mmHg"), "type": NORMAL_TYPE, "text": "Alert thresholds (default)"}
    ]  # fmt: skip
    # the panel itself has no value, so no interpretation of its own
    assert "interpretation" not in observations[4]


def test_values_without_thresholds_and_device_events(patient):
    observations = _send(
        _device(patient),
        [
            {"type": "body_weight", "value": 70, "unit": "kg"},
            {"type": "steps", "value": 100, "unit": "{steps}"},
            {"type": "hrv_sdnn", "value": 40, "unit": "ms"},
            {"type": "body_height", "value": 170, "unit": "cm"},
            {"type": "fall"},
            {"type": "irregular_rhythm"},
            {"type": "battery", "value": 5, "unit": "%"},
        ],
    )
    for obs in observations[:4]:
        assert "interpretation" not in obs and "referenceRange" not in obs
    fall, irregular, battery = observations[4:]
    assert fall["interpretation"] == [
        {"coding": [{"system": V3, "code": "AA", "display": "Critical abnormal"}]}
    ]
    assert irregular["interpretation"] == [
        {"coding": [{"system": V3, "code": "A", "display": "Abnormal"}]}
    ]
    assert "interpretation" not in battery


def test_settings_are_read_once_per_batch(patient):
    from fhir_api import services as fhir

    other = fhir.create("Patient", {"resourceType": "Patient"}).resource.logical_id
    PatientTwin.objects.create(patient_id=other, thresholds={"heart_rate": {"low": 30}})
    device = _device(patient)
    # moved to the other patient at 10:05: a batch across the change concerns both
    services.pair(device, other, start=parse_time("2026-11-27T10:05:00Z"))
    readings = [
        {"type": "heart_rate", "value": 35, "unit": "/min", "time": f"2026-11-27T10:{m:02d}:00Z"}
        for m in range(10)
    ]
    with CaptureQueriesContext(connection) as queries:
        result = services.ingest(device, parse_payload({"readings": readings}), source="http")
    assert result.accepted == 10
    twin_reads = [q for q in queries.captured_queries if "twins_patient_twin" in q["sql"]]
    assert len(twin_reads) == 1  # both patients' settings, in one query
    stored = {
        json_io.loads(r.content)["effectiveDateTime"][:16]: json_io.loads(r.content)
        for r in Resource.objects.filter(resource_type="Observation")
    }
    assert stored["2026-11-27T10:04"]["interpretation"][0]["coding"][0]["code"] == "LL"
    assert stored["2026-11-27T10:05"]["interpretation"][0]["coding"][0]["code"] == "N"
    assert stored["2026-11-27T10:05"]["subject"] == {"reference": f"Patient/{other}"}


def test_thresholds_edited_by_hand_into_nonsense_do_not_stop_the_ingest(patient):
    """The admin edits thresholds as JSON: what is not a number counts as not set."""
    PatientTwin.objects.create(
        patient_id=patient,
        thresholds={
            "heart_rate": {"high": "120"},
            "respiratory_rate": [1],
            "systolic": {"low": True},
        },
    )
    observations = _send(
        _device(patient),
        [
            {"type": "heart_rate", "value": 125, "unit": "/min"},
            {"type": "respiratory_rate", "value": 25, "unit": "/min"},
            {"type": "blood_pressure", "systolic": 95, "diastolic": 60, "unit": "mm[Hg]"},
        ],
    )
    assert observations[0]["interpretation"][0]["coding"][0]["code"] == "H"
    assert observations[0]["referenceRange"][0]["text"] == "NEWS2 pulse scores 0"
    assert observations[1]["interpretation"][0]["coding"][0]["code"] == "HH"
    assert observations[2]["component"][0]["interpretation"][0]["coding"][0]["code"] == "L"
