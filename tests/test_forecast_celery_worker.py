"""Forecast tasks on a real Celery worker (``celery -A dth_project worker``, two processes) on
Redis, on the test database: the nightly fan-out queues one task per series and the worker
forecasts each; the same series sent again and again while that runs (on both processes at
once) still makes one run. The queue is this run's own (``CELERY_QUEUE``), so no other worker
on the machine takes these tasks and this one takes no one else's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import redis
from celery import Celery
from django.conf import settings

from forecasting.models import ForecastRun

from .conftest import ROOT, _database_url
from .forecast_support import HR, hourly, make_patient, sine_trend_noise, store_readings

BROKER = os.environ.get("FORECAST_TEST_BROKER_URL", "redis://127.0.0.1:6379/12")
SERIES = "forecasting.tasks.forecast_series"


def _wait(predicate, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)
    return value


@pytest.fixture
def worker(transactional_db) -> Iterator[tuple[Celery, str]]:
    queue = f"forecast-tests-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REQUIRE_POSTGRES": "0",
        "SECRET_KEY": "forecast-celery-tests",
        "DEBUG": "0",
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": BROKER,
        "CELERY_QUEUE": queue,
        "FORECAST_SAMPLES": "100",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    # Not the current app: this process's own tasks (the twin's refresh) stay in process.
    producer = Celery("forecast-tests", broker=BROKER, backend=BROKER, set_as_current=False)
    producer.conf.task_default_queue = queue
    producer.connection_for_write().ensure_connection(max_retries=1)  # Redis is up
    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
    log_path = settings.VAR_DIR / "forecast-celery-worker.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "dth_project",
                "worker",
                "--pool=prefork",
                "--concurrency=2",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                f"--hostname={queue}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited: {log_path.read_text()[-3000:]}")
        return " ready." in log_path.read_text()

    try:
        _wait(ready, "the worker to start")
        yield producer, queue
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        redis.Redis.from_url(BROKER).delete(queue)


def test_the_worker_runs_the_fan_out_and_each_series_once(worker, settings):
    producer, queue = worker
    settings.FORECAST_ON_NEW_DATA = False  # this process only stores; the worker forecasts
    seasonal, rising = make_patient("Seasonal"), make_patient("Rising")
    store_readings(seasonal, hourly(sine_trend_noise(), 96))
    noise = np.random.default_rng(3).normal(0, 1, 96)
    store_readings(rising, hourly(lambda i: 123 - (95 - i) * 0.7 + noise[i], 96))
    assert not ForecastRun.objects.exists()

    queued = producer.send_task("forecasting.tasks.forecast_all").get(timeout=120)
    assert queued == 2
    # The same series again, four times over, racing the fan-out's task on two processes.
    repeats = [producer.send_task(SERIES, args=[rising, HR]) for _ in range(4)]
    results = [r.get(timeout=180) for r in repeats]
    assert {r["status"] for r in results} == {"done"}
    assert len({r["run"] for r in results}) == 1

    broker = redis.Redis.from_url(BROKER)
    _wait(
        lambda: (
            ForecastRun.objects.filter(patient_id=seasonal).exists() and broker.llen(queue) == 0
        ),
        "the fan-out's tasks",
    )
    time.sleep(1)  # a task taken off the queue just now finishes its run
    runs = ForecastRun.objects.filter(code=HR)
    assert _wait(lambda: runs.count() == 2, "both runs")
    assert {(r.patient_id, r.status) for r in runs} == {
        (seasonal, ForecastRun.DONE),
        (rising, ForecastRun.DONE),
    }
    risen = runs.get(patient_id=rising)
    assert risen.pk == results[0]["run"] and risen.probability >= 0.9
    assert risen.backtest["origins"] >= 1 and risen.fit_seconds > 0
