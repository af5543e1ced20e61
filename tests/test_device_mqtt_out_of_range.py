"""Over MQTT, a message with a number or time beyond what Python holds is kept as a dead letter
with its reason and the consumer goes on: the messages after it are stored.

Was: such a message (a value of 10**400, a time before the first instant in UTC) raised out of
the consumer, which stopped with the message unacknowledged, so that every restart met it
again and no reading of any device was ingested any more.
"""

from __future__ import annotations

import pytest

from devices.models import DeadLetter
from devices.mqtt import publish

from .test_device_ingest_mqtt import (  # noqa: F401 (fixtures)
    consuming,
    device,
    device_observations,
    prefix,
    readings,
)


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "heart_rate", "value": 10**400, "unit": "/min", "time": "2026-11-27T10:00:00Z"},
        {"type": "heart_rate", "value": 70, "unit": "/min", "time": "0001-01-01T00:00:00+14:00"},
    ],
)
def test_an_out_of_range_message_is_a_dead_letter_and_the_next_ones_are_stored(device, bad):  # noqa: F811
    dev, key, _patient = device
    with consuming("test-oor") as (_consumer, pub, failures):
        publish(pub, dev.identifier, key, {"readings": [bad]}).wait_for_publish(5)
        publish(pub, dev.identifier, key, {"readings": readings(0, 5)}).wait_for_publish(5)
    assert not failures
    assert device_observations().count() == 5
    letter = DeadLetter.objects.get(source="mqtt")
    assert "finite number" in letter.reason or "outside the years 1 to 9999" in letter.reason
