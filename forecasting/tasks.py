"""Celery tasks of the forecasting app: one task per series, taking ids only.

- ``forecast_series(patient_id, code)``: ``services.run_forecast``, idempotent (the same data
  returns the stored run), with time limits and retries with backoff on database errors; the
  run is re-read under a per-series lock before anything is written.
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
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Count, Max
from django.utils import timezone

from fhir_api.exceptions import Gone, NotFound
from twins.models import VitalHour

from .model import HOURLY, MIN_POINTS
from .models import ForecastRun
from .series import FORECAST_VITALS, UnknownCode, by_name

log = logging.getLogger(__name__)
RECENT = timedelta(days=2)


@shared_task(
    acks_late=True,
    soft_time_limit=120,
    time_limit=180,
    autoretry_for=(OperationalError, InterfaceError),
    max_retries=4,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
)
def forecast_series(patient_id: str, code: str) -> dict[str, Any]:
    """Forecast one series; what it stored (or why nothing was)."""
    from .services import run_forecast

    try:
        run = run_forecast(patient_id, code)
    except (NotFound, Gone, UnknownCode) as error:
        log.info("no forecast of %s for Patient/%s: %s", code, patient_id, error)
        return {"status": "ignored", "reason": str(error)}
    return {"run": run.pk, "status": run.status, "probability": run.probability}


def queue(patient_id: str, code: str) -> None:
    """Queue ``forecast_series`` once the current transaction commits (at once outside one)."""

    def send() -> None:
        try:
            forecast_series.delay(patient_id, code)
        except Exception:  # a forecast that cannot be queued must not fail what queued it
            log.exception("could not queue the forecast of %s for Patient/%s", code, patient_id)

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
