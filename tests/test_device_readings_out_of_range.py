"""Readings whose numbers or times are beyond what Python's float and datetime hold are
rejected one by one with a reason and kept as dead letters, never a 500; the good readings of
the same batch are stored.

Was: a value of 10**400 (an integer JSON allows), a blood pressure with such a systolic, or a
time of 0001-01-01T00:00:00+14:00 (before the first instant in UTC) was a 500 for the whole
batch, and the same message over MQTT stopped the consumer.
"""

from __future__ import annotations

import pytest

from devices import services
from devices.models import DeadLetter
from devices.readings import parse_time
from fhir_api import json_io

URL = "/api/devices/readings"
HUGE = 10**400


@pytest.fixture
def device_key(api) -> str:
    r = api.fhir("POST", "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Big"}]})
    device = services.register_device("EUI-HUGE")
    services.pair(device, r.json_body["id"], start=parse_time("2026-11-01T00:00:00Z"))
    return services.issue_key(device)


def hr(value, time="2026-11-27T10:00:00Z"):
    return {"type": "heart_rate", "value": value, "unit": "/min", "time": time}


@pytest.mark.parametrize(
    "bad",
    [
        hr(HUGE),
        hr(-HUGE),
        {
            "type": "blood_pressure",
            "systolic": HUGE,
            "diastolic": 80,
            "unit": "mm[Hg]",
            "time": "2026-11-27T10:00:00Z",
        },
        hr(72, time="0001-01-01T00:00:00+14:00"),
    ],
)
def test_an_out_of_range_reading_is_rejected_and_kept_the_rest_stored(anon, device_key, bad):
    body = {"device": "EUI-HUGE", "readings": [bad, hr(72, "2026-11-27T10:05:00Z")]}
    response = anon.post(
        URL,
        data=json_io.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Device {device_key}",
    )
    assert response.status_code == 202, response.content
    result = response.json()
    assert result["accepted"] == 1 and result["rejected"] == 1
    assert result["rejections"][0]["index"] == 0
    letter = DeadLetter.objects.get()
    assert letter.reason == result["rejections"][0]["reason"]
    assert json_io.loads(letter.payload)["reading"] == json_io.loads(json_io.dumps(bad))
