"""How a forecast task fails, on a real Celery worker on Redis and the test database:

- at its soft time limit the task stops and stores a failed run with the reason, which the
  clinician reads as a skipped run's (``GET $forecast``: status failed, reason);
- a database error (a row lock another connection holds, past the task's ``lock_timeout``) is
  retried with backoff, and the retry stores one run: whether the error came before the run
  was written (the twin's row locked) or after (the series' queued mark locked).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
from celery import Celery
from django.db import connection
from django.utils import timezone

from forecasting.models import ForecastRun, QueuedForecast
from forecasting.operation import forecast_parameters
from twins.models import PatientTwin

from .conftest import _database_url
from .forecast_support import (
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
def worker(transactional_db, settings) -> Iterator[tuple[Celery, str]]:
    settings.FORECAST_ON_NEW_DATA = False  # this process only stores; the worker forecasts
    with celery_worker(FORECAST_LOCK_TIMEOUT_MS="300") as started:
        yield started


@pytest.fixture
def patient(worker) -> str:
    patient = make_patient("Failing")
    store_readings(patient, hourly(sine_trend_noise(), 96))
    assert PatientTwin.objects.filter(patient_id=patient).exists()
    return patient


def test_the_soft_time_limit_stores_a_failed_run_with_the_reason(worker, patient):
    producer, _queue = worker
    result = producer.send_task(SERIES, args=[patient, HR], soft_time_limit=0.2, time_limit=60)
    answer = result.get(timeout=120)
    assert answer["status"] == ForecastRun.FAILED
    run = ForecastRun.objects.get(patient_id=patient, code=HR)
    assert run.pk == answer["run"]
    assert run.reason == "the forecast did not finish within its time limit of 0.2 s"
    assert run.n_points == 96 and not run.points
    params = {p["name"]: p for p in forecast_parameters(run)["parameter"]}
    assert params["status"]["valueCode"] == "failed"
    assert params["reason"]["valueString"] == run.reason

    # The same data with time enough: forecast again rather than reusing the failure.
    again = producer.send_task(SERIES, args=[patient, HR]).get(timeout=180)
    assert again["status"] == ForecastRun.DONE
    assert ForecastRun.objects.filter(patient_id=patient, code=HR).count() == 2


def _locking(sql: str, params: list):
    """Another connection holding ``sql``'s row locks until it rolls back."""
    held = psycopg2.connect(_database_url().replace("postgres://", "postgresql://"))
    with held.cursor() as cursor:
        cursor.execute(sql, params)
        assert cursor.rowcount == 1  # the row is there and locked
    return held


def _retried(producer: Celery, patient: str, held) -> dict:
    result = producer.send_task(SERIES, args=[patient, HR])
    try:
        wait(lambda: result.state == "RETRY", "the task to be retried", timeout=120)
    finally:
        held.rollback()
        held.close()
    return result.get(timeout=180)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="lock_timeout is PostgreSQL's")
def test_a_lock_before_the_run_is_retried_and_stores_one_run(worker, patient):
    producer, _queue = worker
    held = _locking("SELECT 1 FROM twins_patient_twin WHERE patient_id = %s FOR UPDATE", [patient])
    answer = _retried(producer, patient, held)
    assert answer["status"] == ForecastRun.DONE
    assert ForecastRun.objects.filter(patient_id=patient, code=HR).count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="lock_timeout is PostgreSQL's")
def test_a_lock_after_the_run_was_stored_is_retried_and_reuses_it(worker, patient):
    producer, _queue = worker
    mark = QueuedForecast.objects.create(patient_id=patient, code=HR, queued_at=timezone.now())
    held = _locking(
        f"SELECT 1 FROM {QueuedForecast._meta.db_table} WHERE id = %s FOR UPDATE", [mark.pk]
    )
    answer = _retried(producer, patient, held)
    assert answer["status"] == ForecastRun.DONE
    runs = ForecastRun.objects.filter(patient_id=patient, code=HR)
    assert runs.count() == 1 and runs.get().pk == answer["run"]
    assert not QueuedForecast.objects.filter(pk=mark.pk).exists()
