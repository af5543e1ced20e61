"""Readings over MQTT through the real Mosquitto: stored once, even across a killed consumer.

Each test publishes and consumes under a topic prefix of its own (``MQTT_TOPIC_PREFIX``) and
with client ids of its own, so that other test runs, benches or consumers on the shared broker
neither see its messages nor send it theirs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as mqtt
import pytest
from django.conf import settings

from devices import services
from devices.mapping import READING_ID_SYSTEM
from devices.models import DeadLetter
from devices.mqtt import Consumer, broker_address, device_of, publish, subscription
from fhir_api import json_io
from fhir_api.models import Resource
from tests.conftest import ROOT, _database_url


def device_observations():
    """The Observations made from readings (the twin writes Observations of its own: NEWS2)."""
    return Resource.objects.filter(
        resource_type="Observation", content__contains=f'"system":"{READING_ID_SYSTEM}"'
    )


def publisher() -> mqtt.Client:
    host, port, _u, _p = broker_address()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{uuid.uuid4().hex[:8]}"
    )
    client.connect(host, port)
    client.loop_start()
    return client


@contextmanager
def consuming(name: str) -> Iterator[tuple[Consumer, mqtt.Client, list[BaseException]]]:
    """A consumer (client id ``name-…``) running in a thread until idle for 3 s, subscribed
    before the block (so its session exists when the block publishes), and a publisher; at the end of the block the consumer's run is awaited (30 s at most) and the
    publisher disconnected. The list holds what escaped the consumer's run (a consumer must
    not die of a message)."""
    consumer = Consumer(client_id=f"{name}-{uuid.uuid4().hex[:8]}")
    failures: list[BaseException] = []

    def run() -> None:
        try:
            consumer.run(until_idle=3.0)
        except BaseException as exc:
            failures.append(exc)

    pub = publisher()
    try:
        thread = threading.Thread(target=run)
        thread.start()
        assert consumer.connected.wait(10)
        time.sleep(0.3)
        yield consumer, pub, failures
        thread.join(30)
    finally:
        pub.loop_stop()
        pub.disconnect()


@pytest.fixture(autouse=True)
def prefix(settings) -> str:
    """A topic prefix of this test's own, for the consumers in this process and in others."""
    settings.MQTT_TOPIC_PREFIX = f"test-{uuid.uuid4().hex[:10]}/dth/devices"
    return settings.MQTT_TOPIC_PREFIX


@pytest.fixture
def device(transactional_db):
    from fhir_api import services as fhir

    patient = fhir.create(
        "Patient", {"resourceType": "Patient", "name": [{"family": "Mqtt"}]}
    ).resource
    serial = f"MQTT-{uuid.uuid4().hex[:6]}"
    dev = services.register_device(serial)
    from devices.readings import parse_time

    services.pair(dev, patient.logical_id, start=parse_time("2026-01-01T00:00:00Z"))
    return dev, services.issue_key(dev), patient.logical_id


def readings(start: int, n: int) -> list[dict]:
    return [
        {
            "type": "heart_rate",
            "value": 60 + (i % 40),
            "unit": "/min",
            "time": f"2026-11-27T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z",
        }
        for i in range(start, start + n)
    ]


def test_messages_become_observations_and_bad_ones_dead_letters(device, prefix):
    dev, key, _patient = device
    with consuming("test-consumer") as (_consumer, pub, failures):
        publish(pub, dev.identifier, key, {"readings": readings(0, 20)}).wait_for_publish(5)
        publish(pub, dev.identifier, key, {"readings": readings(0, 20)}).wait_for_publish(
            5
        )  # resend
        publish(pub, dev.identifier, "dk_wrong", {"readings": readings(100, 1)}).wait_for_publish(5)
        pub.publish(f"{prefix}/{dev.identifier}/readings", b"{broken", qos=1).wait_for_publish(5)
    assert not failures
    assert device_observations().count() == 20
    reasons = list(DeadLetter.objects.filter(source="mqtt").values_list("reason", flat=True))
    assert len(reasons) == 2
    assert any(r.startswith("401") for r in reasons) and any(r.startswith("400") for r in reasons)


def _open_session(client_id: str) -> None:
    """Make the consumer's persistent session exist (subscribed) before anything is published,
    as it would in production, where the consumer runs before devices send."""
    host, port, _u, _p = broker_address()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.connect(host, port)
    client.loop_start()
    client.subscribe(subscription(), qos=1)[1]
    time.sleep(0.5)
    client.loop_stop()
    client.disconnect()


def _close_session(client_id: str) -> None:
    """Remove the persistent session from the shared broker (a clean connect ends it)."""
    host, port, _u, _p = broker_address()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect(host, port)
    client.disconnect()


def _end_orphan_sessions() -> None:
    """A killed process's PostgreSQL session lingers until the server notices; end it now."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


def _consumer_process(client_id: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REQUIRE_POSTGRES": "0",
        "SECRET_KEY": "t",
        "MQTT_TOPIC_PREFIX": settings.MQTT_TOPIC_PREFIX,  # the environment variable, as deployed
    }
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "mqtt_ingest",
            "--client-id",
            client_id,
            "--max-batch",
            "50",
            "--until-idle",
            "4",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(settings.VAR_DIR / f"{client_id}.log", "a"),
    )


def test_a_consumer_killed_mid_stream_loses_and_duplicates_nothing(device):
    dev, key, _patient = device
    client_id = f"test-kill-{uuid.uuid4().hex[:8]}"
    total_messages, per_message = 120, 25
    _open_session(client_id)
    pub = publisher()
    first = _consumer_process(client_id)
    second = None
    try:
        for m in range(total_messages):
            publish(pub, dev.identifier, key, {"readings": readings(m * per_message, per_message)})
        deadline = time.monotonic() + 60
        while device_observations().count() < per_message * 5:
            assert time.monotonic() < deadline, "the consumer stored nothing"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # mid-stream: some batches committed, later ones not
        first.wait(10)
        _end_orphan_sessions()
        stored_at_kill = device_observations().count()
        second = _consumer_process(client_id)  # same client id: the broker redelivers
        assert second.wait(120) == 0
    finally:
        pub.loop_stop()
        pub.disconnect()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        _close_session(client_id)
    observations = device_observations()
    assert 0 < stored_at_kill < total_messages * per_message  # killed mid-stream
    assert observations.count() == total_messages * per_message
    keys = [json_io.loads(r.content)["identifier"][0]["value"] for r in observations]
    assert len(set(keys)) == len(keys)
    assert not DeadLetter.objects.exists()


def test_a_consumer_takes_only_its_own_prefix(device, prefix):
    """Messages under another prefix (another deployment, test run or bench on the same broker)
    are neither stored nor dead-lettered; the prefix comes from MQTT_TOPIC_PREFIX."""
    dev, key, _patient = device
    other = f"test-{uuid.uuid4().hex[:10]}/dth/devices"
    with consuming("test-prefix") as (consumer, pub, failures):
        assert consumer.topic == f"{prefix}/+/readings"
        publish(pub, dev.identifier, key, {"readings": readings(0, 5)}, prefix=other)
        publish(pub, dev.identifier, key, {"readings": readings(100, 3)}).wait_for_publish(5)
        pub.publish(f"{other}/{dev.identifier}/readings", b"{broken", qos=1).wait_for_publish(5)
    assert not failures
    assert consumer.processed == 1
    assert device_observations().count() == 3
    assert not DeadLetter.objects.exists()


def test_topic_prefixes_are_checked():
    assert subscription("site-a/dth/devices/") == "site-a/dth/devices/+/readings"
    assert device_of("site-a/devices/W-1/readings", "site-a/devices") == "W-1"
    for bad in (
        "site-a/devices/W-1/x/readings",
        "dth/devices/W-1/readings",
        "site-a/devices//readings",
    ):
        with pytest.raises(Exception, match="is not site-a/devices/<device>/readings"):
            device_of(bad, "site-a/devices")
    for prefix in ("", "/", "dth/+", "dth/#", "$SYS/x", "a//b"):
        with pytest.raises(ValueError, match="MQTT topic prefix"):
            subscription(prefix)
    run = subprocess.run(
        [sys.executable, "manage.py", "mqtt_ingest", "--topic-prefix", "dth/+"],
        cwd=ROOT,
        env={**os.environ, "SECRET_KEY": "t", "DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and "MQTT topic prefix 'dth/+'" in run.stderr
