"""Forecast tasks on a real Celery worker (``celery -A dth_project worker``, two processes) on
Redis, on the test database: the nightly fan-out queues one task per series and the worker
forecasts each; the same series sent again and again while that runs (on both processes at
once) still makes one run. The queue is this run's own (``CELERY_QUEUE``), so no other worker
on the machine takes these tasks and this one takes no one else's."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import redis
from celery import Celery

from forecasting.models import ForecastRun

from .forecast_support import (
    BROKER,
    HR,
    SERIES,
    celery_worker,
    hourly,
    make_patient,
    sine_trend_noise,
    store_readings,
    wait,
)


@pytest.fixture
def worker(transactional_db) -> Iterator[tuple[Celery, str]]:
    with celery_worker() as started:
        yield started


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
    wait(
        lambda: (
            ForecastRun.objects.filter(patient_id=seasonal).exists() and broker.llen(queue) == 0
        ),
        "the fan-out's tasks",
    )
    time.sleep(1)  # a task taken off the queue just now finishes its run
    runs = ForecastRun.objects.filter(code=HR)
    assert wait(lambda: runs.count() == 2, "both runs")
    assert {(r.patient_id, r.status) for r in runs} == {
        (seasonal, ForecastRun.DONE),
        (rising, ForecastRun.DONE),
    }
    risen = runs.get(patient_id=rising)
    assert risen.pk == results[0]["run"] and risen.probability >= 0.9
    assert risen.backtest["origins"] >= 1 and risen.fit_seconds > 0
