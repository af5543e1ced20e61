"""GET [base]/Patient/{id}/$twin: the twin's state for EHRs and FHIR clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B.parameters import Parameters

from devices import services as devices
from devices.adapters import parse_payload
from devices.readings import parse_time
from fhir_api.search.dates import format_instant

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


@pytest.fixture
def patient_with_readings(api, django_capture_on_commit_callbacks):
    patient = api.fhir(
        "POST", "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Op"}]}
    ).json_body["id"]
    device = devices.register_device("OP-1")
    devices.pair(device, patient, start=parse_time("2026-11-01T00:00:00Z"))
    t = format_instant(T0)
    readings = [
        {"type": "heart_rate", "value": 118, "unit": "/min", "time": t},
        {"type": "respiratory_rate", "value": 23, "unit": "/min", "time": t},
        {"type": "oxygen_saturation", "value": 95, "unit": "%", "time": t},
        {"type": "body_temperature", "value": 37.9, "unit": "Cel", "time": t},
        {"type": "blood_pressure", "systolic": 118, "diastolic": 75, "unit": "mm[Hg]", "time": t},
        {
            "type": "battery",
            "value": 55,
            "unit": "%",
            "time": format_instant(T0 + timedelta(seconds=1)),
        },
    ]
    with django_capture_on_commit_callbacks(execute=True):
        devices.ingest(device, parse_payload({"readings": readings}), source="http")
    return patient


def test_twin_returns_stage_vitals_news2_alerts_and_devices(api, patient_with_readings):
    r = api.fhir("GET", f"/fhir/Patient/{patient_with_readings}/$twin")
    assert r.status_code == 200, r.json_body
    Parameters.model_validate(r.json_body)
    params = {}
    for p in r.json_body["parameter"]:
        params.setdefault(p["name"], []).append(p)
    assert params["stage"][0]["valueCode"] == "monitored"
    vitals = {
        next(x["valueString"] for x in v["part"] if x["name"] == "code"): v for v in params["vital"]
    }
    hr = {x["name"]: x for x in vitals["heart_rate"]["part"]}
    assert hr["value"]["valueQuantity"]["value"] == 118
    news2 = {x["name"]: x for x in params["news2"][0]["part"]}
    assert news2["score"]["valueInteger"] == 5 and news2["band"]["valueString"] == "medium"
    alert = {x["name"]: x for x in params["alert"][0]["part"]}
    assert alert["problem"]["valueString"] == "news2" and alert["flag"]["valueReference"][
        "reference"
    ].startswith("Flag/")
    device = {x["name"]: x for x in params["device"][0]["part"]}
    assert device["battery"]["valueQuantity"]["value"] == 55


def test_twin_of_an_unknown_patient_is_404_and_it_is_declared(api, anon):
    assert api.fhir("GET", "/fhir/Patient/nobody/$twin").status_code == 404
    assert api.fhir("GET", "/fhir/Observation/x/$twin").status_code == 404
    capability = anon.fhir("GET", "/fhir/metadata").json_body
    patient = next(r for r in capability["rest"][0]["resource"] if r["type"] == "Patient")
    names = {o["name"]: o["definition"] for o in patient["operation"]}
    assert names["twin"] == "https://clouddth.example/fhir/OperationDefinition/Patient-twin"
    assert "everything" in names
