"""Readings in → twin updated → NEWS2 Observation and Flag searchable; one alert, not a flood."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devices import services as devices
from devices.adapters import parse_payload
from devices.readings import parse_time
from fhir_api.search.dates import format_instant
from twins.models import Alert, PatientTwin

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


@pytest.fixture
def wearer(api):
    patient = api.fhir(
        "POST", "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Twin"}]}
    ).json_body["id"]
    device = devices.register_device("TWIN-1")
    devices.pair(device, patient, start=parse_time("2026-11-01T00:00:00Z"))
    return patient, device


def vitals(at: datetime, hr=72, rr=16, spo2=97, temp=36.8, sbp=125, dbp=80) -> list[dict]:
    t = format_instant(at)
    return [
        {"type": "heart_rate", "value": hr, "unit": "/min", "time": t},
        {"type": "respiratory_rate", "value": rr, "unit": "/min", "time": t},
        {"type": "oxygen_saturation", "value": spo2, "unit": "%", "time": t},
        {"type": "body_temperature", "value": temp, "unit": "Cel", "time": t},
        {"type": "blood_pressure", "systolic": sbp, "diastolic": dbp, "unit": "mm[Hg]", "time": t},
    ]


@pytest.fixture
def send(django_capture_on_commit_callbacks):
    """Ingest as the HTTP view does, running what is queued on commit (the twin's refresh)."""

    def ingest(device, readings):
        with django_capture_on_commit_callbacks(execute=True):
            return devices.ingest(device, parse_payload({"readings": readings}), source="http")

    return ingest


def test_a_calm_patient_is_monitored_with_a_low_news2_and_no_alert(api, wearer, send):
    patient, device = wearer
    send(device, vitals(T0))
    twin = PatientTwin.objects.get(patient_id=patient)
    assert twin.stage == "monitored"
    assert twin.news2["total"] == 0 and twin.news2["partial"]  # oxygen and consciousness assumed
    assert twin.state["latest"]["heart_rate"]["value"] == 72
    assert not Alert.objects.exists()
    score = api.fhir(
        "GET", f"/fhir/Observation?patient={patient}&code=http://snomed.info/sct|1287358002"
    ).json_body
    assert score["total"] == 1
    obs = score["entry"][0]["resource"]
    assert obs["valueInteger"] == 0 and len(obs["derivedFrom"]) == 5
    assert "breathing air" in obs["note"][0]["text"]


def test_deterioration_raises_one_flag_that_escalates_and_resolves_after_calm(api, wearer, send):
    patient, device = wearer
    send(device, vitals(T0))
    # NEWS2 5: RR 22 (2), SpO2 95 (1), HR 115 (2) → medium
    send(device, vitals(T0 + timedelta(minutes=5), hr=115, rr=22, spo2=95))
    alert = Alert.objects.get(problem="news2")
    assert alert.severity == 2
    flags = api.fhir("GET", f"/fhir/Flag?patient={patient}").json_body
    assert flags["total"] == 1 and "NEWS2 5" in flags["entry"][0]["resource"]["code"]["text"]
    assert flags["entry"][0]["resource"]["status"] == "active"
    # More of the same: still one alert. Worse: it escalates, the same Flag.
    send(device, vitals(T0 + timedelta(minutes=6), hr=116, rr=22, spo2=95))
    send(device, vitals(T0 + timedelta(minutes=7), hr=135, rr=26, spo2=95, sbp=95))
    assert Alert.objects.filter(problem="news2").count() == 1
    alert.refresh_from_db()
    assert alert.severity == 3
    flags = api.fhir("GET", f"/fhir/Flag?patient={patient}").json_body
    assert flags["total"] == 1 and flags["entry"][0]["resource"]["status"] == "active"
    # Calm for longer than the calm period: the alert resolves itself, the Flag is inactive.
    send(device, vitals(T0 + timedelta(minutes=10)))
    send(device, vitals(T0 + timedelta(minutes=45)))
    alert.refresh_from_db()
    assert alert.status == Alert.RESOLVED
    flags = api.fhir("GET", f"/fhir/Flag?patient={patient}").json_body
    assert flags["total"] == 1
    assert flags["entry"][0]["resource"]["status"] == "inactive"
    assert "end" in flags["entry"][0]["resource"]["period"]


def test_a_fall_alerts_at_once(api, wearer, send):
    patient, device = wearer
    send(device, [*vitals(T0), {"type": "fall", "time": format_instant(T0 + timedelta(minutes=1))}])
    alert = Alert.objects.get(problem="event:fall")
    assert alert.severity == 3
    flag = api.fhir(
        "GET", f"/fhir/Flag?patient={patient}&code=http://snomed.info/sct|1912002"
    ).json_body
    assert flag["total"] == 1
