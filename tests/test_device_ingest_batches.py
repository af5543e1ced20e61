"""Several devices' readings in one write (an MQTT consumer's batch): each device's answer and
Observations are what it would get alone, a resend across messages is still one Observation,
and each device's rejections are its own dead letters."""

from __future__ import annotations

import pytest

from devices import services
from devices.adapters import parse_payload
from devices.mapping import READING_ID_SYSTEM
from devices.models import DeadLetter, Device
from devices.readings import parse_time
from devices.signals import readings_stored
from fhir_api import json_io
from fhir_api.models import Resource


def _patient(family: str) -> str:
    from fhir_api import services as fhir

    return fhir.create(
        "Patient", {"resourceType": "Patient", "name": [{"family": family}]}
    ).resource.logical_id


def _hr(value: int, time: str) -> dict:
    return {"type": "heart_rate", "value": value, "unit": "/min", "time": time}


@pytest.fixture
def signals():
    sent = []

    def receiver(sender, device_id, patient_ids, observation_ids, **kwargs):
        sent.append((device_id, patient_ids, sorted(observation_ids)))

    readings_stored.connect(receiver)
    yield sent
    readings_stored.disconnect(receiver)


def test_one_write_for_several_devices_answers_each_as_alone(transactional_db, signals):
    ann, bob = _patient("Ann"), _patient("Bob")
    watch = services.register_device("BATCH-A")
    services.pair(watch, ann, start=parse_time("2026-11-01T00:00:00Z"))
    cuff = services.register_device("BATCH-B")
    services.pair(cuff, bob, start=parse_time("2026-11-27T09:00:00Z"))

    first = [_hr(70, "2026-11-27T10:00:00Z"), _hr(71, "2026-11-27T10:01:00Z")]
    first.append(dict(first[0]))  # sent twice in one message
    second = [_hr(80, "2026-11-27T10:00:00Z"), _hr(81, "2026-11-27T08:00:00Z")]  # before pairing
    resend = [_hr(71, "2026-11-27T10:01:00Z"), _hr(72, "2026-11-27T10:02:00Z")]
    results = services.ingest_many(
        [
            (watch, parse_payload({"readings": first}), "mqtt"),
            (cuff, parse_payload({"readings": second}), "mqtt"),
            (Device.objects.get(pk=watch.pk), parse_payload({"readings": resend}), "mqtt"),
        ]
    )
    answers = [(r.accepted, r.duplicate, [x["index"] for x in r.rejected]) for r in results]
    assert answers == [(2, 1, []), (1, 0, [1]), (1, 1, [])]

    stored = {
        r.logical_id: json_io.loads(r.content)
        for r in Resource.objects.filter(
            resource_type="Observation", content__contains=f'"system":"{READING_ID_SYSTEM}"'
        )
    }  # the device's Observations (the twin writes NEWS2 Observations of its own)
    assert len(stored) == 4
    for result, device, patient in zip(results, (watch, cuff, watch), (ann, bob, ann), strict=True):
        for oid in result.observation_ids:
            assert stored[oid]["subject"] == {"reference": f"Patient/{patient}"}
            assert stored[oid]["device"] == {"reference": f"Device/{device.fhir_id}"}
    values = sorted(o["valueQuantity"]["value"] for o in stored.values())
    assert values == [70, 71, 72, 80]

    (letter,) = DeadLetter.objects.all()
    assert letter.device_identifier == "BATCH-B" and letter.source == "mqtt"
    assert "paired to no patient" in letter.reason
    assert json_io.loads(letter.payload)["reading"]["time"] == "2026-11-27T08:00:00Z"

    # the twin is told once per device part, after the commit, with that part's Observations
    assert signals == [
        (watch.pk, [ann], sorted(results[0].observation_ids)),
        (cuff.pk, [bob], sorted(results[1].observation_ids)),
        (watch.pk, [ann], sorted(results[2].observation_ids)),
    ]
    for device in (watch, cuff):
        device.refresh_from_db()
        assert device.last_seen is not None


def test_a_batch_whose_write_fails_is_taken_message_by_message(transactional_db, monkeypatch):
    """Should a consumer's one write for its batch fail, each message is written on its own:
    nothing of the batch is lost, and a bad message is still only a dead letter."""
    from devices import mqtt

    ann = _patient("Ann")
    watch = services.register_device("BATCH-F")
    services.pair(watch, ann, start=parse_time("2026-11-01T00:00:00Z"))
    key = services.issue_key(watch)
    consumer = mqtt.Consumer(client_id="test-batch-fallback", prefix="test-fallback/devices")

    def body(value: int, minute: int) -> bytes:
        readings = [_hr(value, f"2026-11-27T10:{minute:02d}:00Z")]
        return json_io.dumps({"key": key, "readings": readings}).encode()

    topic = "test-fallback/devices/BATCH-F/readings"
    batch = [
        mqtt.Message(1, 1, topic, body(70, 1)),
        mqtt.Message(2, 1, topic, b"{broken"),
        mqtt.Message(3, 1, topic, body(71, 2)),
    ]
    failures = []
    real = services.ingest_many

    def failing(parts, **kwargs):
        if not failures:  # the batch's write fails once; the one-by-one writes go through
            failures.append(len(parts))
            raise RuntimeError("the batch's write failed")
        return real(parts, **kwargs)

    monkeypatch.setattr(services, "ingest_many", failing)
    consumer.process(batch)
    assert failures == [2]  # the two readable messages, tried as one write first
    values = sorted(
        json_io.loads(r.content)["valueQuantity"]["value"]
        for r in Resource.objects.filter(
            resource_type="Observation", content__contains=f'"system":"{READING_ID_SYSTEM}"'
        )
    )
    assert values == [70, 71]
    (letter,) = DeadLetter.objects.all()
    assert letter.reason.startswith("400") and letter.payload == "{broken"
    assert consumer.processed == 3
