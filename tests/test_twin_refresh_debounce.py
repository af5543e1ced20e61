"""A burst of writes about one patient queues one twin refresh, on a real server and worker.

With a broker, each committed Observation used to publish its own ``refresh_twin`` task (a
broker round trip in every create). Now a write publishes one only when no refresh of the
patient is queued and not yet started (``twins.debounce``): the queued one reads everything
committed before it starts. Checked here with the production server and a Celery worker on
Redis, as deployed (see tests/test_twin_celery.py):

- 50 single-Observation creates of one patient while the worker is not yet consuming queue one
  task, and once it runs the twin has applied all 50;
- a reading committed while a refresh of the patient runs queues a new task and is applied.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from dth_project.celery import app as project_app
from twins.models import PatientTwin, VitalHour

from .celery_support import server_ready, spawn_server, spawn_worker, worker_ready
from .test_twin_celery import BROKER, TASK, WAIT, Stack, _wait, fhir  # noqa: F401 (a fixture)
from .twin_views_support import make_patient

BURST = 50


class SplitStack(Stack):
    """The server and the worker of ``Stack``, started one after the other."""

    def __init__(self) -> None:
        super().__init__()
        project_app.set_current()  # the producer made itself current: this process stays eager
        self.env["TWIN_REFRESH_DEBOUNCE_SECONDS"] = "120"  # outlasts the burst on a busy machine
        self.redis = redis.Redis.from_url(BROKER)

    def start(self) -> None:
        self.producer.connection_for_write().ensure_connection(max_retries=1)
        self.server = spawn_server(self.env, self.port, self.server_log)
        self.procs.append(self.server)
        _wait(
            lambda: server_ready(self.server, self.url, self.server_log),
            "the server to start",
            timeout=120,
            interval=0.3,
        )

    def start_worker(self) -> None:
        worker = spawn_worker(self.env, self.queue, self.worker_log)
        self.procs.append(worker)
        _wait(
            lambda: worker_ready(worker, self.worker_log),
            "the worker to start",
            timeout=120,
            interval=0.3,
        )

    def queued(self) -> int:
        """Messages waiting in the run's queue (kombu's Redis lists, one per priority)."""
        return sum(self.redis.llen(key) for key in self.redis.scan_iter(f"{self.queue}*"))

    def received(self) -> int:
        """Refresh tasks the worker has taken from the queue so far."""
        if not self.worker_log.exists():
            return 0
        return sum(
            1
            for line in self.worker_log.read_text().splitlines()
            if f"{TASK}[" in line and line.rstrip().endswith("received")
        )

    def pending(self, patient: str) -> bool:
        return bool(self.redis.exists(f"twin-refresh-pending:{self.queue}:{patient}"))

    def stop(self) -> None:
        super().stop()
        for key in self.redis.scan_iter(f"twin-refresh-pending:{self.queue}:*"):
            self.redis.delete(key)


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker) -> Iterator[SplitStack]:
    running = SplitStack()
    try:
        running.start()
        yield running
    finally:
        running.stop()


def create_heart_rate(stack: SplitStack, session, patient: str, value: float, at) -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": at.isoformat(),
        "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org"},
    }
    response = session.post(
        f"{stack.url}/fhir/Observation", data=json.dumps(observation), timeout=30
    )
    assert response.status_code == 201, response.text


def heart_rates(patient: str) -> int:
    return (
        VitalHour.objects.filter(patient_id=patient, vital="heart_rate").aggregate(n=Sum("n"))["n"]
        or 0
    )


def test_a_burst_of_creates_queues_one_refresh_and_all_are_applied(stack, fhir):  # noqa: F811
    patient = make_patient("Burst")
    base = timezone.now() - timedelta(minutes=BURST + 5)
    for i in range(BURST):
        create_heart_rate(stack, fhir, patient, 60 + i % 20, base + timedelta(minutes=i))

    # No worker yet: what the server published waits in the queue. One task, not fifty.
    assert 1 <= stack.queued() <= 2
    assert stack.pending(patient)

    stack.start_worker()
    _wait(lambda: heart_rates(patient) == BURST, f"the twin to apply the {BURST} readings")
    twin = PatientTwin.objects.get(patient_id=patient)
    assert twin.state["latest"]["heart_rate"]["value"] == 60 + (BURST - 1) % 20
    time.sleep(1.0)
    assert heart_rates(patient) == BURST  # none twice
    assert not stack.pending(patient)  # the task started: the next write queues one again


def test_a_reading_committed_while_a_refresh_runs_is_applied(stack, fhir):  # noqa: F811
    if connection.vendor != "postgresql":
        pytest.skip("holds the twin's row lock from another connection (PostgreSQL)")
    if not stack.worker_log.exists() or " ready." not in stack.worker_log.read_text():
        stack.start_worker()
    patient = make_patient("During")
    at = timezone.now() - timedelta(minutes=10)
    create_heart_rate(stack, fhir, patient, 70, at)
    _wait(lambda: heart_rates(patient) == 1, "the first reading to be applied")
    before = stack.received()

    # A refresh of the patient starts and waits on the twin's row, held by this thread.
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                PatientTwin.objects.select_for_update().get(patient_id=patient)
                locked.set()
                release.wait(WAIT)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(WAIT)
        create_heart_rate(stack, fhir, patient, 71, at + timedelta(minutes=1))
        _wait(lambda: not stack.pending(patient), "the refresh to start (its key deleted)")
        # The refresh started (its task deleted the key); a reading committed now queues
        # another task rather than counting on the running one.
        create_heart_rate(stack, fhir, patient, 140, at + timedelta(minutes=2))
        _wait(lambda: stack.received() >= before + 2, "a second refresh task to be received")
    finally:
        release.set()
        holder.join(WAIT)
    _wait(lambda: heart_rates(patient) == 3, "all three readings to be applied")
    twin = PatientTwin.objects.get(patient_id=patient)
    assert twin.state["latest"]["heart_rate"]["value"] == 140
    time.sleep(1.0)
    assert heart_rates(patient) == 3
