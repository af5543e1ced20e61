"""A NUL character in a device payload (a raw 0x00 byte, or ``\\u0000`` in a JSON string) never
loses the readings: the payload or reading is kept as a dead letter (its NUL written ``\\u0000``,
as PostgreSQL's text holds no NUL) and the good readings of the batch are stored.

Was, on PostgreSQL: writing the dead letter failed, so the request was a 500 with nothing kept
(the whole batch lost), and over MQTT the consumer stopped on the message (unacknowledged, met
again on every restart), so no reading of any device was ingested any more.
"""

from __future__ import annotations

import pytest

from devices import services
from devices.models import DeadLetter
from devices.mqtt import publish
from devices.readings import parse_time
from fhir_api import json_io

from .test_device_ingest_mqtt import (  # noqa: F401 (fixtures)
    consuming,
    device,
    device_observations,
    prefix,
    readings,
)

URL = "/api/devices/readings"


@pytest.fixture
def device_key(api) -> str:
    r = api.fhir("POST", "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Nul"}]})
    dev = services.register_device("EUI-NUL")
    services.pair(dev, r.json_body["id"], start=parse_time("2026-11-01T00:00:00Z"))
    return services.issue_key(dev)


def post(client, key, text: str):
    return client.post(
        URL, data=text.encode(), content_type="application/json", HTTP_AUTHORIZATION=f"Device {key}"
    )


def test_a_reading_with_a_nul_in_its_unit_is_a_dead_letter_and_the_rest_is_stored(anon, device_key):
    good = '{"type":"heart_rate","value":72,"unit":"/min","time":"2026-11-27T10:05:00Z"}'
    bad = '{"type":"heart_rate","value":72,"unit":"\\u0000","time":"2026-11-27T10:00:00Z"}'
    response = post(anon, device_key, f'{{"device":"EUI-NUL","readings":[{bad},{good}]}}')
    assert response.status_code == 202, response.content
    assert response.json()["accepted"] == 1 and response.json()["rejected"] == 1
    letter = DeadLetter.objects.get()
    assert json_io.loads(letter.payload)["reading"]["unit"] == "\x00"


def test_a_body_with_a_raw_nul_byte_is_a_400_and_a_dead_letter(anon, device_key):
    body = '{"device":"EUI-NUL","readings":[{"type":"heart_rate","unit":"\x00"}]}'
    response = post(anon, device_key, body)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    letter = DeadLetter.objects.get()
    assert letter.payload == body.replace("\x00", "\\u0000")


def test_an_mqtt_message_with_a_nul_byte_is_a_dead_letter_and_the_next_ones_are_stored(device):  # noqa: F811
    dev, key, _patient = device
    with consuming("test-nul") as (consumer, pub, failures):
        topic = consumer.topic.replace("+", dev.identifier)
        pub.publish(topic, b"\xff\xfe\x00", qos=1).wait_for_publish(5)
        publish(pub, dev.identifier, key, {"readings": readings(0, 5)}).wait_for_publish(5)
    assert not failures
    assert device_observations().count() == 5
    letter = DeadLetter.objects.get(source="mqtt")
    assert letter.reason.startswith("400") and "\\u0000" in letter.payload
