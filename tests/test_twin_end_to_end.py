"""End to end over the real services: readings in over HTTP and MQTT → twin → NEWS2 and Flag
searchable over FHIR → alert in the ward overview → acknowledged by a clinician."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta

import paho.mqtt.client as mqtt
from django.test import Client
from django.utils import timezone

from devices import services as devices
from devices.mqtt import Consumer, broker_address, publish
from fhir_api.search.dates import format_instant
from twins.models import Alert


def vitals(at, hr, rr, spo2):
    t = format_instant(at)
    return [
        {"type": "heart_rate", "value": hr, "unit": "/min", "time": t},
        {"type": "respiratory_rate", "value": rr, "unit": "/min", "time": t},
        {"type": "oxygen_saturation", "value": spo2, "unit": "%", "time": t},
        {"type": "body_temperature", "value": 37.2, "unit": "Cel", "time": t},
        {"type": "blood_pressure", "systolic": 120, "diastolic": 78, "unit": "mm[Hg]", "time": t},
    ]


def test_readings_to_acknowledged_alert(transactional_db, api, admin_client, settings):
    # A topic prefix of this run's own: no other consumer on the shared broker takes its message.
    settings.MQTT_TOPIC_PREFIX = f"test-{uuid.uuid4().hex[:10]}/dth/devices"
    patient = api.fhir(
        "POST", "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "EndToEnd"}]}
    ).json_body["id"]
    start = timezone.now() - timedelta(hours=1)
    watch = devices.register_device(f"E2E-HTTP-{uuid.uuid4().hex[:6]}")
    hub = devices.register_device(f"E2E-MQTT-{uuid.uuid4().hex[:6]}")
    for device in (watch, hub):
        devices.pair(device, patient, start=start)
    watch_key, hub_key = devices.issue_key(watch), devices.issue_key(hub)

    # A calm reading over HTTP: the twin starts monitoring, no alert.
    calm = Client().post(
        "/api/devices/readings",
        data=json.dumps({"readings": vitals(start + timedelta(minutes=10), 72, 15, 97)}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Device {watch_key}",
    )
    assert calm.status_code == 202 and json.loads(calm.content)["accepted"] == 5
    assert not Alert.objects.filter(patient_id=patient).exists()

    # Deterioration over MQTT, through the real Mosquitto and the consumer.
    consumer = Consumer(client_id=f"e2e-{uuid.uuid4().hex[:8]}")
    thread = threading.Thread(target=consumer.run, kwargs={"until_idle": 3.0})
    thread.start()
    assert consumer.connected.wait(15)
    time.sleep(0.3)
    host, port, _u, _p = broker_address()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"e2e-pub-{uuid.uuid4().hex[:8]}")
    pub.connect(host, port)
    pub.loop_start()
    publish(
        pub,
        hub.identifier,
        hub_key,
        {"readings": vitals(start + timedelta(minutes=20), 124, 24, 93)},
    ).wait_for_publish(10)
    thread.join(60)
    pub.loop_stop()
    pub.disconnect()

    # NEWS2 (HR 124 → 2, RR 24 → 2, SpO2 93 → 2: 6, medium) and its Flag, found over FHIR.
    score = api.fhir(
        "GET",
        f"/fhir/Observation?patient={patient}&code=http://snomed.info/sct|1287358002&_sort=-date",
    ).json_body
    assert score["entry"][0]["resource"]["valueInteger"] == 6
    flags = api.fhir("GET", f"/fhir/Flag?patient={patient}").json_body
    assert flags["total"] == 1 and flags["entry"][0]["resource"]["status"] == "active"
    alert = Alert.objects.get(patient_id=patient, problem="news2")

    # The ward overview shows it; the clinician acknowledges it; FHIR records who and when.
    ward = json.loads(admin_client.get("/twins/ward.json").content)
    assert patient in json.dumps(ward["patients"]) and "NEWS2 6" in ward["html"]
    response = admin_client.post(f"/twins/alert/{alert.pk}/act/", {"action": "acknowledge"})
    assert response.status_code in (200, 302)
    alert.refresh_from_db()
    assert alert.status == Alert.ACKNOWLEDGED
    provenance = api.fhir("GET", f"/fhir/Provenance?target=Flag/{alert.flag_id}").json_body
    assert provenance["total"] == 1
    assert provenance["entry"][0]["resource"]["activity"]["coding"][0]["code"] == "acknowledge"
