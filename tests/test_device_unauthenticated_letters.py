"""What comes without a valid device key is kept for review within bounds: small bodies, a
limited number an hour per registered device, and as many for all unregistered devices
together. Anyone can send to the readings endpoint, so nobody without a key can fill the
database; a wearable whose key was revoked, or one not registered yet, still has its readings
kept, to be replayed."""

from __future__ import annotations

import pytest

from devices import mqtt as device_mqtt
from devices import services
from devices.models import DeadLetter
from fhir_api import json_io

URL = "/api/devices/readings"


def reading(value: int = 70) -> dict:
    return {"type": "heart_rate", "value": value, "unit": "/min", "time": "2026-11-27T09:00:00Z"}


def post(client, body, key="dk_wrong"):
    return client.post(
        URL,
        data=body if isinstance(body, (str, bytes)) else json_io.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Device {key}",
    )


@pytest.fixture
def registered(db):
    return services.register_device("EUI-KNOWN")


def test_a_registered_devices_reading_without_a_valid_key_is_kept(anon, registered):
    r = post(anon, {"device": "EUI-KNOWN", "readings": [reading()]})
    assert r.status_code == 401
    letter = DeadLetter.objects.get()
    assert letter.device_identifier == "EUI-KNOWN" and letter.reason.startswith("401")


def test_devices_not_in_the_registry_share_one_hourly_bound(anon, registered, settings):
    settings.DEVICE_UNAUTHENTICATED_LETTERS_PER_HOUR = 3
    bodies = [
        {"device": "EUI-NOBODY", "readings": [reading()]},
        "not even json",
        '{"device": "EUI-KNOWN\\u0000", "readings": []}',
        {"device": "EUI-SOMEONE-ELSE", "readings": [reading()]},
        {"device": "EUI-NOBODY", "readings": [reading(71)]},
    ]
    for body in bodies:
        r = post(anon, body)
        assert r.status_code == 401
        assert json_io.loads(r.content)["resourceType"] == "OperationOutcome"
    kept = list(DeadLetter.objects.order_by("pk").values_list("device_identifier", flat=True))
    assert kept == ["EUI-NOBODY", "", "EUI-KNOWN\\u0000"]
    # A registered device's own bound is untouched by them.
    assert post(anon, {"device": "EUI-KNOWN", "readings": [reading()]}).status_code == 401
    assert DeadLetter.objects.filter(device_identifier="EUI-KNOWN").count() == 1


def test_a_large_body_without_a_key_is_refused_and_not_kept(anon, registered, settings):
    settings.DEVICE_UNAUTHENTICATED_LETTER_BYTES = 2000
    many = {"device": "EUI-KNOWN", "readings": [reading(60 + i % 40) for i in range(200)]}
    assert len(json_io.dumps(many)) > 2000
    assert post(anon, many).status_code == 401
    assert not DeadLetter.objects.exists()
    assert post(anon, {"device": "EUI-KNOWN", "readings": [reading()]}).status_code == 401
    assert DeadLetter.objects.count() == 1


def test_at_most_the_hourly_number_is_kept_per_device(anon, registered, settings):
    settings.DEVICE_UNAUTHENTICATED_LETTERS_PER_HOUR = 3
    for value in range(60, 70):
        assert post(anon, {"device": "EUI-KNOWN", "readings": [reading(value)]}).status_code == 401
    assert DeadLetter.objects.count() == 3


def test_a_valid_keys_dead_letters_are_kept_beyond_the_unauthenticated_bound(
    anon, registered, settings
):
    settings.DEVICE_UNAUTHENTICATED_LETTERS_PER_HOUR = 1
    key = services.issue_key(registered)
    for _ in range(3):
        assert post(anon, "{broken", key=key).status_code == 400
    assert DeadLetter.objects.count() == 3


def test_an_mqtt_message_without_a_key_follows_the_same_bounds(registered, settings):
    settings.DEVICE_UNAUTHENTICATED_LETTERS_PER_HOUR = 2
    prefix = settings.MQTT_TOPIC_PREFIX
    body = json_io.dumps({"readings": [reading()]}).encode()
    for _ in range(4):
        device_mqtt.handle_many([device_mqtt.Message(0, 1, f"{prefix}/EUI-KNOWN/readings", body)])
    for _ in range(3):
        device_mqtt.handle_many([device_mqtt.Message(0, 1, f"{prefix}/EUI-NOBODY/readings", body)])
    assert sorted(DeadLetter.objects.values_list("device_identifier", flat=True)) == [
        "EUI-KNOWN",
        "EUI-KNOWN",
        "EUI-NOBODY",
        "EUI-NOBODY",
    ]
