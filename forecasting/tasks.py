"""Celery tasks of the forecasting app: one task per series, taking ids only.

- ``forecast_series(patient_id, code)``: ``services.run_forecast``, idempotent (the same data
  returns the stored run), with time limits (``FORECAST_SOFT_TIME_LIMIT``: a failed run with
  the reason; ``FORECAST_TIME_LIMIT``: the process is killed) and retries with backoff on
  database errors (a row lock waits ``FORECAST_LOCK_TIMEOUT_MS`` at most); the run is re-read
  under a per-series lock before anything is written, so a retry never stores a second.
- ``forecast_all``: sent by celery beat every night (``dth_project/celery.py``), queues one
  ``forecast_series`` per series with data in the last two days, so the work spreads over as
  many workers as listen.
- ``queue_due(patient_id)``: after each twin refresh (``twins.tasks.refresh_twin``, through
  Celery's ``task_postrun`` signal), queues the series that got ``FORECAST_REFORECAST_HOURS``
  new hourly means (a new day for daily series) since their last run, or that have enough data
  for a first one.

With no ``CELERY_BROKER_URL`` the tasks run in process (eagerly), as the twins' do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Count, Max
from django.utils import timezone

from fhir_api.exceptions import Gone, NotFound
from twins.models import VitalHour

from .model import HOURLY, MIN_POINTS
from .models import ForecastRun, QueuedForecast
from .series import FORECAST_VITALS, UnknownCode, by_name

log = logging.getLogger(__name__)
RECENT = timedelta(days=2)


@contextmanager
def _lock_timeout(milliseconds: int) -> Iterator[None]:
    """On PostgreSQL, wait at most ``milliseconds`` for a row lock (``lock_timeout``): a series
    whose twin is locked by a long transaction fails with an ``OperationalError`` and is retried
    with backoff, instead of holding the worker. SQLite has no such setting."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, false)", [f"{milliseconds}ms"])
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
        except DatabaseError:  # a broken connection: Django replaces it after the task
            log.warning("could not reset lock_timeout", exc_info=True)


def _finished(patient_id: str, code: str, started) -> None:
    """The series is no longer waiting for a worker (unless it was asked for again since)."""
    QueuedForecast.objects.filter(patient_id=patient_id, code=code, queued_at__lte=started).delete()


@shared_task(
    bind=True,
    acks_late=True,
    soft_time_limit=settings.FORECAST_SOFT_TIME_LIMIT,
    time_limit=settings.FORECAST_TIME_LIMIT,
    autoretry_for=(OperationalError, InterfaceError),
    max_retries=4,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
)
def forecast_series(self, patient_id: str, code: str) -> dict[str, Any]:
    """Forecast one series; what it stored (or why nothing was).

    A database error (a lock not granted within ``FORECAST_LOCK_TIMEOUT_MS``, a lost
    connection) rolls back what the attempt wrote and the task is retried; the retry finds the
    data's run if one was stored, so it never stores a second. At the soft time limit the
    attempt stops and a failed run is stored with the reason."""
    from .services import record_failure, run_forecast

    started, began = timezone.now(), time.monotonic()
    limit = (self.request.timelimit or (None, None))[1] or self.soft_time_limit
    with _lock_timeout(settings.FORECAST_LOCK_TIMEOUT_MS):
        try:
            run = run_forecast(patient_id, code)
        except (NotFound, Gone, UnknownCode) as error:
            log.info("no forecast of %s for Patient/%s: %s", code, patient_id, error)
            _finished(patient_id, code, started)
            return {"status": "ignored", "reason": str(error)}
        except (OperationalError, InterfaceError):
            raise  # retried (autoretry_for)
        except Exception as error:
            # The soft time limit raises wherever the task is; prophet and cmdstanpy catch it in
            # places and fail differently (an AttributeError, a RuntimeError): past the limit,
            # whatever was raised, the attempt ran out of time.
            if not isinstance(error, SoftTimeLimitExceeded) and (
                not limit or time.monotonic() - began < limit
            ):
                raise
            reason = f"the forecast did not finish within its time limit of {limit:g} s"
            log.warning("forecast of %s for Patient/%s: %s (%r)", code, patient_id, reason, error)
            run = record_failure(patient_id, code, reason)
        _finished(patient_id, code, started)
    return {"run": run.pk, "status": run.status, "probability": run.probability}


def preload(**_signal) -> None:
    """Celery ``worker_process_init``: import prophet, pandas and numpy once per worker process,
    before any task. A task's first fit then pays no import, and the soft time limit never
    interrupts an import half way (which leaves numpy unimportable in the process)."""
    import pandas  # noqa: F401
    import prophet  # noqa: F401


def queue(patient_id: str, code: str) -> None:
    """Queue ``forecast_series`` once the current transaction commits (at once outside one),
    noting that the series is waiting (``QueuedForecast``) for ``GET $forecast`` to say so."""
    QueuedForecast.objects.update_or_create(
        patient_id=patient_id, code=code, defaults={"queued_at": timezone.now()}
    )

    def send() -> None:
        try:
            forecast_series.delay(patient_id, code)
        except Exception:  # a forecast that cannot be queued must not fail what queued it
            log.exception("could not queue the forecast of %s for Patient/%s", code, patient_id)
            QueuedForecast.objects.filter(patient_id=patient_id, code=code).delete()

    transaction.on_commit(send)


@shared_task
def forecast_all() -> int:
    """Nightly: queue a forecast of every series with data in the last two days."""
    since = timezone.now() - RECENT
    pairs = (
        VitalHour.objects.filter(vital__in=list(FORECAST_VITALS), hour__gte=since, n__gt=0)
        .values_list("patient_id", "vital")
        .distinct()
        .order_by("patient_id", "vital")
    )
    count = 0
    for patient_id, vital in pairs:
        queue(patient_id, by_name(vital).code)
        count += 1
    return count


def due(patient_id: str) -> list[str]:
    """Codes of the patient's series that got enough new data since their last run."""
    latest = {
        row["code"]: row["end"]
        for row in ForecastRun.objects.filter(patient_id=patient_id)
        .values("code")
        .annotate(end=Max("window_end"))
    }
    oldest = timezone.now() - timedelta(days=90)
    hours = {
        row["vital"]: row
        for row in VitalHour.objects.filter(
            patient_id=patient_id, vital__in=list(FORECAST_VITALS), n__gt=0, hour__gte=oldest
        )
        .values("vital")
        .annotate(count=Count("hour"), newest=Max("hour"))
    }
    codes = []
    for name, row in hours.items():
        vital = by_name(name)
        end = latest.get(vital.code)
        if end is None:
            if row["count"] >= MIN_POINTS[vital.granularity]:
                codes.append(vital.code)
            continue
        if vital.granularity == HOURLY:
            fresh = VitalHour.objects.filter(
                patient_id=patient_id, vital=name, n__gt=0, hour__gte=end
            ).count()
            if fresh >= settings.FORECAST_REFORECAST_HOURS:
                codes.append(vital.code)
        elif row["newest"] >= end:  # a new day began since the last daily run
            codes.append(vital.code)
    return codes


def queue_due(patient_id: str) -> list[str]:
    codes = due(patient_id)
    for code in codes:
        queue(patient_id, code)
    return codes


def after_task(sender=None, args=None, kwargs=None, state=None, **_extra) -> None:
    """Celery ``task_postrun``: a twin refresh that succeeded may have made forecasts due."""
    if (
        getattr(sender, "name", "") != "twins.tasks.refresh_twin"
        or state != "SUCCESS"
        or not settings.FORECAST_ON_NEW_DATA
    ):
        return
    patient_id = (args or [None])[0] or (kwargs or {}).get("patient_id")
    if not patient_id:
        return
    try:
        queue_due(patient_id)
    except Exception:  # the twin's refresh is done; a forecast check must not undo it
        log.exception("could not check the forecasts due for Patient/%s", patient_id)
