"""Readings over HTTP: stored as searchable Observations, duplicates and bad input handled."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from devices.models import DeadLetter, Device
from fhir_api import json_io
from fhir_api.models import Resource

URL = "/api/devices/readings"


@pytest.fixture
def patient_id(api) -> str:
    r = api.fhir(
        "POST", "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Okafor"}]}
    )
    return r.json_body["id"]


@pytest.fixture
def device_key(db, patient_id, capsys) -> str:
    from devices import services

    device = services.register_device("EUI-0001")
    services.pair(device, patient_id, start=_t("2026-11-01T00:00:00Z"))
    return services.issue_key(device)


def _t(text):
    from devices.readings import parse_time

    return parse_time(text)


def post(client, key, body, **extra):
    return client.post(
        URL,
        data=json_io.dumps(body) if not isinstance(body, str) else body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Device {key}",
        **extra,
    )


def hr(value, time, **kw):
    return {"type": "heart_rate", "value": value, "unit": "/min", "time": time, **kw}


def test_readings_become_searchable_observations_right_after_the_202(
    api, anon, device_key, patient_id
):
    body = {
        "device": "EUI-0001",
        "readings": [
            hr(72, "2026-11-27T10:00:00Z"),
            {
                "type": "blood_pressure",
                "systolic": 128,
                "diastolic": 82,
                "unit": "mm[Hg]",
                "time": "2026-11-27T10:00:05Z",
            },
            {
                "type": "body_temperature",
                "value": 99.5,
                "unit": "[degF]",
                "time": "2026-11-27T10:01:00Z",
            },
        ],
    }
    r = post(anon, device_key, body)
    assert r.status_code == 202, r.content
    assert json_io.loads(r.content)["accepted"] == 3
    found = api.fhir(
        "GET",
        f"/fhir/Observation?patient={patient_id}&code=http://loinc.org|8867-4&date=ge2026-11-27",
    ).json_body
    assert found["total"] == 1
    obs = found["entry"][0]["resource"]
    assert obs["valueQuantity"] == {
        "value": 72,
        "unit": "beats/minute",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    }
    temp = api.fhir(
        "GET", f"/fhir/Observation?patient={patient_id}&code=http://loinc.org|8310-5"
    ).json_body
    assert temp["entry"][0]["resource"]["valueQuantity"]["value"] == 37.5
    assert temp["entry"][0]["resource"]["valueQuantity"]["code"] == "Cel"


def test_a_resent_batch_creates_no_duplicate(anon, device_key):
    body = {
        "device": "EUI-0001",
        "readings": [hr(70, "2026-11-27T09:00:00Z"), hr(71, "2026-11-27T09:01:00Z")],
    }
    assert json_io.loads(post(anon, device_key, body).content)["accepted"] == 2
    again = json_io.loads(post(anon, device_key, body).content)
    assert again == {"accepted": 0, "duplicate": 2, "rejected": 0, "rejections": []}
    assert Resource.objects.filter(resource_type="Observation").count() == 2


def test_bad_readings_are_rejected_with_reasons_and_kept(anon, device_key):
    body = {
        "device": "EUI-0001",
        "readings": [
            hr(0, "2026-11-27T09:00:00Z"),
            hr(400, "2026-11-27T09:00:01Z"),
            {
                "type": "oxygen_saturation",
                "value": 101,
                "unit": "%",
                "time": "2026-11-27T09:00:02Z",
            },
            {
                "type": "body_temperature",
                "value": 60,
                "unit": "Cel",
                "time": "2026-11-27T09:00:03Z",
            },
            hr(150, "2026-11-27T09:00:04Z"),  # abnormal but possible: stored
            hr(80, "2026-10-01T09:00:00Z"),  # before the pairing: nobody wore it
        ],
    }
    result = json_io.loads(post(anon, device_key, body).content)
    assert result["accepted"] == 1
    assert [r["index"] for r in result["rejections"]] == [0, 1, 2, 3, 5]
    assert "physiologically impossible" in result["rejections"][0]["reason"]
    assert "paired to no patient" in result["rejections"][4]["reason"]
    assert DeadLetter.objects.filter(source="http").count() == 5


def test_unknown_or_revoked_key_is_401_and_kept(anon, device_key):
    r = post(anon, "dk_wrong", {"device": "EUI-0001", "readings": [hr(70, "2026-11-27T09:00:00Z")]})
    assert r.status_code == 401
    assert json_io.loads(r.content)["resourceType"] == "OperationOutcome"
    from devices import services

    services.revoke_keys(Device.objects.get(identifier="EUI-0001"))
    assert post(anon, device_key, {"device": "EUI-0001", "readings": []}).status_code == 401
    assert DeadLetter.objects.filter(reason__startswith="401").count() == 2


def test_malformed_payload_is_400_with_details_and_kept(anon, device_key):
    r = post(anon, device_key, "{not json")
    assert r.status_code == 400
    assert "not valid JSON" in json_io.loads(r.content)["issue"][0]["diagnostics"]
    r = post(anon, device_key, {"device": "EUI-0001", "readings": "nope"})
    assert r.status_code == 400
    assert DeadLetter.objects.filter(payload="{not json").exists()


def test_register_device_command_prints_a_working_key(api, anon, patient_id, capsys):
    call_command("register_device", "--identifier", "SN-42", "--patient", patient_id)
    key = capsys.readouterr().out.strip().splitlines()[-1]
    r = post(anon, key, {"device": "SN-42", "readings": [hr(66, "2099-01-01T00:00:00Z")]})
    assert json_io.loads(r.content)["rejections"][0]["reason"].endswith("is in the future")
