"""Helpers of the forecasting tests: a patient wearing a device, and synthetic hourly or daily
series of known shape stored as the devices app stores readings (the twin refreshed on commit,
so its hourly aggregates hold them)."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import numpy as np
from celery import Celery
from django.conf import settings
from django.utils import timezone

from devices import services as devices
from devices.adapters import parse_payload
from devices.models import Pairing
from fhir_api import services as store
from fhir_api.search.dates import format_instant

from . import celery_support

HR = "8867-4"
BROKER = os.environ.get("FORECAST_TEST_BROKER_URL", "redis://127.0.0.1:6379/12")
SERIES = "forecasting.tasks.forecast_series"


def last_hour() -> datetime:
    """The start of the hour before this one: the newest bucket a test series fills (readings
    in the future are rejected by the devices app)."""
    return timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def make_patient(family: str = "Forecast") -> str:
    body = {"resourceType": "Patient", "name": [{"family": family, "given": ["Ada"]}]}
    return store.create("Patient", body).resource.logical_id


def store_readings(patient_id: str, readings: list[dict]) -> devices.IngestResult:
    """Ingest ``readings`` from a device the patient wears, as the HTTP endpoint does."""
    device = devices.register_device(f"FC-{patient_id[:8]}")
    if not Pairing.objects.filter(device=device).exists():
        devices.pair(device, patient_id, start=datetime(2020, 1, 1, tzinfo=UTC))
    return devices.ingest(device, parse_payload({"readings": readings}), source="http")


def hourly(
    shape: Callable[[int], float],
    hours: int,
    *,
    end: datetime | None = None,
    kind: str = "heart_rate",
    unit: str = "/min",
    skip: set[int] = frozenset(),
) -> list[dict]:
    """One reading at 20 past each hour for ``hours`` hours ending in the hour of ``end``;
    ``shape(i)`` the value of hour i (0 the oldest); the hours in ``skip`` have none."""
    end = end or last_hour()
    first = end - timedelta(hours=hours - 1)
    return [
        {
            "type": kind,
            "value": round(float(shape(i)), 2),
            "unit": unit,
            "time": format_instant(first + timedelta(hours=i, minutes=20)),
        }
        for i in range(hours)
        if i not in skip
    ]


def sine_trend_noise(seed: int = 7) -> Callable[[int], float]:
    """A daily sine (±10 /min) on a slow upward trend with N(0, 2) noise."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 2, 10_000)
    return lambda i: 75 + 10 * math.sin(2 * math.pi * i / 24) + 0.02 * i + noise[i]


def white_noise(mean: float, sd: float, seed: int = 11) -> Callable[[int], float]:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, sd, 10_000)
    return lambda i: mean + noise[i]


def wait(predicate, what: str, timeout: float = 120.0):
    """`celery_support.wait`, asking every 0.2 s and by default for two minutes."""
    return celery_support.wait(predicate, what, timeout, interval=0.2)


@contextmanager
def celery_worker(**env_extra: str) -> Iterator[tuple[Celery, str]]:
    """A real worker (``celery -A dth_project worker``, two prefork processes) on Redis and
    the test database, consuming a queue of its own (so no other worker on the machine takes
    these tasks); ``env_extra``: settings of the worker's environment. Yields a producer app
    (not the current one: this process's own tasks, the twin's refresh, stay in process) and
    the queue's name. Needs the test's data committed (``transactional_db``)."""
    queue = f"forecast-tests-{uuid.uuid4().hex[:10]}"
    env = celery_support.app_env(
        "forecast-celery-tests", BROKER, queue, FORECAST_SAMPLES="100", **env_extra
    )
    producer = celery_support.producer("forecast-tests", BROKER, queue)
    log_path = settings.VAR_DIR / f"forecast-celery-worker-{queue}.log"
    proc = celery_support.spawn_worker(env, queue, log_path)
    try:
        wait(lambda: celery_support.worker_ready(proc, log_path), "the worker to start")
        yield producer, queue
    finally:
        celery_support.stop([proc], timeout=30)
        celery_support.forget_queue(producer, queue)
