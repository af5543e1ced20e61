"""Twin refreshes on a real Celery worker, as deployed: ``celery -A dth_project worker`` on Redis,
fed by the production server (dth_project.serve), both on the test database.

- a reading in over HTTP → the server queues ``twins.tasks.refresh_twin`` after its commit →
  the worker updates the twin and writes the alert's Flag and the NEWS2 Observation, found over
  FHIR search;
- the same task run twice (at once, on two worker processes) changes nothing the first did not,
  and refreshes racing for the same new readings apply each reading once;
- a write that rolls back queues nothing; the same write committed does.

The broker is Redis with a queue of this run's own (``CELERY_QUEUE``), so another worker on the
machine never takes these tasks and this one takes no one else's.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from devices import services as devices
from devices.readings import parse_time
from fhir_api.models import ReferenceIndex, Resource, TokenIndex
from twins.fhir import TWIN_TAG
from twins.models import Alert, PatientTwin, VitalHour

from .celery_support import (
    app_env,
    forget_queue,
    producer,
    server_ready,
    spawn,
    spawn_server,
    spawn_worker,
    stop,
    worker_ready,
)
from .celery_support import wait as _wait
from .conftest import _free_port
from .twin_views_support import make_patient, vitals

BROKER = os.environ.get("TWIN_TEST_BROKER_URL", "redis://127.0.0.1:6379/9")
TASK = "twins.tasks.refresh_twin"
WAIT = 60.0


class Stack:
    """The production server and a Celery worker sharing the test database, the broker and a
    queue."""

    def __init__(self) -> None:
        self.queue = f"twin-tests-{uuid.uuid4().hex[:10]}"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = app_env("twin-celery-tests", BROKER, self.queue, FHIR_BASE_URL="")
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        self.worker_log = settings.VAR_DIR / "twin-celery-worker.log"
        self.server_log = settings.VAR_DIR / "twin-celery-server.log"
        self.procs: list[subprocess.Popen] = []
        self.producer = producer("twin-tests", BROKER, self.queue)

    def _spawn(self, argv: list[str], log) -> subprocess.Popen:
        """``python -m argv`` with the stack's environment, its output to the open file ``log``;
        stopped with the stack."""
        proc = spawn(argv, self.env, Path(log.name))
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        worker = spawn_worker(self.env, self.queue, self.worker_log)
        server = spawn_server(self.env, self.port, self.server_log)
        self.procs += [worker, server]
        _wait(
            lambda: (
                worker_ready(worker, self.worker_log)
                and server_ready(server, self.url, self.server_log)
            ),
            "the worker and the server to start",
            timeout=120,
            interval=0.3,
        )

    def stop(self) -> None:
        stop(self.procs)
        forget_queue(self.producer, self.queue)  # leave nothing behind on the broker

    def send(self, patient_id: str):
        return self.producer.send_task(TASK, args=[patient_id], queue=self.queue)


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker) -> Iterator[Stack]:
    running = Stack()
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
def fhir(stack, transactional_db, token) -> requests.Session:
    session = requests.Session()
    session.headers.update(
        {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    )
    return session


def worn(family: str) -> tuple[str, str]:
    """A patient (committed: the server and the worker see it) with a device: (patient, key)."""
    patient = make_patient(family)
    device = devices.register_device(f"CELERY-{uuid.uuid4().hex[:8]}")
    devices.pair(device, patient, start=parse_time("2026-11-01T00:00:00Z"), by="tests")
    return patient, devices.issue_key(device)


def post_readings(stack: Stack, key: str, readings: list[dict]) -> None:
    response = requests.post(
        f"{stack.url}/api/devices/readings",
        data=json.dumps({"readings": readings}),
        headers={"Authorization": f"Device {key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(readings)


def active_flags(stack: Stack, session: requests.Session, patient: str) -> list[dict]:
    bundle = session.get(f"{stack.url}/fhir/Flag", params={"patient": patient}, timeout=30).json()
    return [e["resource"] for e in bundle.get("entry", []) if e["resource"]["status"] == "active"]


def settled(patient: str) -> bool:
    """The twin has applied every Observation about the patient but its own NEWS2 scores (they
    carry nothing it follows, queue no refresh, and are passed over by the next one)."""
    own = TokenIndex.objects.filter(
        param="_tag", system=TWIN_TAG["system"], code=TWIN_TAG["code"]
    ).values("resource_id")
    newest = (
        ReferenceIndex.objects.filter(
            resource_type="Observation",
            param="subject",
            target_type="Patient",
            target_id=patient,
        )
        .exclude(resource_id__in=own)
        .order_by("-resource_id")
        .values_list("resource_id", flat=True)
        .first()
    )
    twin = PatientTwin.objects.filter(patient_id=patient).first()
    return bool(newest and twin and twin.applied_upto >= newest)


def snapshot(patient: str) -> dict:
    """Everything a refresh writes about the patient: twin, alerts, FHIR resources and versions."""
    twin = PatientTwin.objects.get(patient_id=patient)
    written = (
        Resource.objects.filter(
            pk__in=ReferenceIndex.objects.filter(target_type="Patient", target_id=patient).values(
                "resource_id"
            )
        )
        .order_by("pk")
        .values_list("resource_type", "logical_id", "version_id")
    )
    return {
        "applied_upto": twin.applied_upto,
        "state": twin.state,
        "news2": twin.news2,
        "risk": twin.risk,
        "stage": twin.stage,
        "alerts": list(
            Alert.objects.filter(patient_id=patient)
            .order_by("pk")
            .values_list("pk", "problem", "severity", "status", "flag_id", "last_seen")
        ),
        "resources": list(written),
    }


def test_a_reading_in_updates_the_twin_and_the_worker_writes_the_flag(stack, fhir):
    patient, key = worn("Worker")
    at = timezone.now() - timedelta(minutes=10)
    post_readings(stack, key, vitals(at, hr=124, rr=24, spo2=93))

    flags = _wait(lambda: active_flags(stack, fhir, patient), "the alert's Flag over FHIR")

    assert len(flags) == 1
    assert flags[0]["subject"]["reference"] == f"Patient/{patient}"
    twin = PatientTwin.objects.get(patient_id=patient)
    assert twin.stage == "monitored"
    assert twin.state["latest"]["heart_rate"]["value"] == 124
    assert twin.news2["total"] == 6 and twin.news2["band"] == "medium"
    alert = Alert.objects.get(patient_id=patient, problem="news2")
    assert flags[0]["id"] == alert.flag_id and alert.status == Alert.ACTIVE
    scores = fhir.get(
        f"{stack.url}/fhir/Observation",
        params={"patient": patient, "code": "http://snomed.info/sct|1287358002"},
        timeout=30,
    ).json()
    assert scores["total"] >= 1
    assert scores["entry"][0]["resource"]["valueInteger"] == 6
    # The worker did it: this process never ran a refresh (the server queued it to the broker).
    assert f"{TASK}[" in stack.worker_log.read_text()


def test_the_same_task_twice_changes_nothing_more(stack, fhir):
    patient, key = worn("Twice")
    post_readings(stack, key, vitals(timezone.now() - timedelta(minutes=5), hr=131, rr=26))
    _wait(lambda: active_flags(stack, fhir, patient), "the alert's Flag over FHIR")
    _wait(lambda: settled(patient), "the twin to apply the readings")
    stack.send(patient).get(timeout=WAIT)  # the task once more: it passes over the NEWS2 scores
    before = snapshot(patient)

    first, second = stack.send(patient), stack.send(patient)  # both at once, two processes
    first.get(timeout=WAIT)
    second.get(timeout=WAIT)

    assert snapshot(patient) == before
    assert len(active_flags(stack, fhir, patient)) == 1

    # New readings with the task sent twice more while the server's own refresh is queued:
    # three refreshes race for the same rows, and each reading is applied once.
    base = timezone.now() - timedelta(minutes=4)
    post_readings(
        stack, key, [r for i in range(3) for r in vitals(base + timedelta(minutes=i), hr=135)]
    )
    racing = [stack.send(patient), stack.send(patient)]
    for result in racing:
        result.get(timeout=WAIT)
    _wait(lambda: settled(patient), "the twin to apply the new readings")
    counted = VitalHour.objects.filter(patient_id=patient, vital="heart_rate").aggregate(
        n=Sum("n")
    )["n"]
    assert counted == 4  # one reading, then three: none applied twice
    assert Alert.objects.filter(patient_id=patient).exclude(status=Alert.RESOLVED).count() == 1
    assert len(active_flags(stack, fhir, patient)) == 1


def test_a_refresh_is_queued_on_commit_only(stack, fhir):
    rolled_back, committed = make_patient("Rollback"), make_patient("Commit")

    def bundle(patient: str, *, broken: bool) -> dict:
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": (timezone.now() - timedelta(minutes=3)).isoformat(),
            "valueQuantity": {"value": 77, "unit": "/min", "system": "http://unitsofmeasure.org"},
        }
        entries = [{"resource": observation, "request": {"method": "POST", "url": "Observation"}}]
        if broken:  # the second entry fails, so the whole transaction rolls back
            entries.append(
                {
                    "resource": {**observation, "status": "not-a-status"},
                    "request": {"method": "POST", "url": "Observation"},
                }
            )
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    failed = fhir.post(
        f"{stack.url}/fhir", data=json.dumps(bundle(rolled_back, broken=True)), timeout=30
    )
    assert failed.status_code in (400, 422)
    assert failed.json()["resourceType"] == "OperationOutcome"
    done = fhir.post(
        f"{stack.url}/fhir", data=json.dumps(bundle(committed, broken=False)), timeout=30
    )
    assert done.status_code == 200

    # The committed write's refresh runs; one queued for the rolled-back write would have been
    # sent before it and created that patient's twin.
    _wait(lambda: settled(committed), "the committed Observation's refresh")
    assert (
        PatientTwin.objects.get(patient_id=committed).state["latest"]["heart_rate"]["value"] == 77
    )
    time.sleep(1.0)
    assert not PatientTwin.objects.filter(patient_id=rolled_back).exists()
    assert not Resource.objects.filter(
        pk__in=ReferenceIndex.objects.filter(target_type="Patient", target_id=rolled_back).values(
            "resource_id"
        ),
        resource_type="Observation",
    ).exists()
