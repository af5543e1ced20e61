"""Write paths of the forecasting app: one forecast run of one series, or of all of a patient's.

``run_forecast`` builds the series (``series``), digests it with what else decides the run
(horizon, thresholds, sample count, model version); a stored run with that digest is returned
as it is, so the same data is never fitted twice. Otherwise prophet is fitted (``model``),
backtested (``backtest``), the chance of crossing the patient's threshold is read from its
sample paths (``warning``), and, in one database transaction under a per-series lock, the
``RiskAssessment`` (``fhir``), the predicted alert and the ``ForecastRun`` are written. A series
that cannot be forecast (too short, no recent data) is stored as a skipped run with the reason;
one the model fails on as a failed run. Forecasts: hl7.org/fhir/R4B/riskassessment.html.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from fhir_api.exceptions import BadRequest
from twins import services as twin_services
from twins.operation import check_patient

from . import fhir, tasks, warning
from .backtest import backtest, beats
from .model import DAILY, DEFAULT_HORIZON, HOURLY, MODEL_VERSION, STEP, Skip, fit_predict
from .models import ForecastRun
from .series import Series, UnknownCode, Vital, basis, build, vital_for, vitals_with_data

log = logging.getLogger(__name__)


def horizon_of(vital: Vital) -> int:
    if vital.granularity == HOURLY:
        return settings.FORECAST_HORIZON_HOURS
    return DEFAULT_HORIZON[DAILY]


@dataclass
class Outcome:
    """What the computation (outside any transaction) found, before anything is written."""

    status: str
    reason: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    warning: warning.Warning | None = None


def _stale(series: Series, now: datetime, horizon: int) -> bool:
    end = series.window_end
    return end is not None and now - end > STEP[series.vital.granularity] * horizon


def _out_of_time(error: BaseException) -> bool:
    """The task's soft time limit struck inside the model, which wrapped it (cmdstanpy turns
    any exception of its optimiser into a RuntimeError): it is the time limit, not the model."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, SoftTimeLimitExceeded):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _compute(series: Series, horizon: int, lines: list[tuple[float, str]], now: datetime):
    vital = series.vital
    unit = "hourly" if vital.granularity == HOURLY else "daily"
    if not series.history:
        return Outcome(ForecastRun.SKIPPED, f"no {unit} values of {vital.label} are stored")
    if _stale(series, now, horizon):
        return Outcome(
            ForecastRun.SKIPPED,
            f"no {vital.label} since {series.window_end:%Y-%m-%d %H:%M} UTC: older than the"
            f" {horizon}-{'hour' if vital.granularity == HOURLY else 'day'} horizon",
        )
    try:
        forecast = fit_predict(
            series.history, vital.granularity, horizon, samples=settings.FORECAST_SAMPLES
        )
        scores = backtest(series.history, vital.granularity)
    except Skip as skip:
        return Outcome(ForecastRun.SKIPPED, str(skip))
    except (RuntimeError, ValueError, FloatingPointError) as error:  # the model's, not the DB's
        if _out_of_time(error):
            raise SoftTimeLimitExceeded(str(error)) from error
        log.warning("forecast of %s failed", series.patient_id, exc_info=True)
        return Outcome(ForecastRun.FAILED, f"the model failed: {error}"[:500])
    skill = scores["skill"]
    beat = beats(skill, settings.FORECAST_MIN_SKILL)
    found = warning.crossing(forecast.samples, forecast.times, lines)
    fields: dict[str, Any] = {
        "points": forecast.points,
        "backtest": scores | {"seasonalities": forecast.seasonalities},
        "skill": skill,
        "beats_baseline": beat,
        "fit_seconds": forecast.fit_seconds,
    }
    if found is not None:
        fields |= {
            "threshold": found.threshold,
            "direction": found.direction,
            "probability": found.probability,
            "crossing_at": found.crossing_at,
        }
    return Outcome(ForecastRun.DONE, fields=fields, warning=found)


def _lock(patient_id: str, code: str) -> None:
    """One writer per series at a time (PostgreSQL advisory lock, released at commit; SQLite
    serialises writers anyway)."""
    if connection.vendor == "postgresql":
        key = zlib.crc32(f"forecast:{patient_id}:{code}".encode()) - 2**31
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _existing(patient_id: str, vital: Vital, digest: str) -> ForecastRun | None:
    return ForecastRun.objects.filter(
        patient_id=patient_id, code=vital.code, granularity=vital.granularity, data_digest=digest
    ).first()


def _horizon_text(vital: Vital, horizon: int) -> str:
    return f"{horizon} h" if vital.granularity == HOURLY else f"{horizon} days"


@dataclass
class Prepared:
    """The series of a run and what its digest is made of, read before anything is fitted."""

    vital: Vital
    series: Series
    horizon: int
    lines: list[tuple[float, str]]
    context: dict[str, Any]

    def digest(self, **extra: Any) -> str:
        return self.series.digest(**self.context, **extra)


def _prepare(patient_id: str, code: str, now: datetime, *, refresh: bool = True) -> Prepared:
    vital = vital_for(code)
    check_patient(patient_id)
    if refresh:
        # Observations stored since the twin last ran reach its hourly aggregates first.
        twin_services.refresh(patient_id)
    series = build(patient_id, vital, now)
    horizon = horizon_of(vital)
    lines = warning.patient_thresholds(patient_id, vital.name)
    context = {
        "horizon": horizon,
        "thresholds": lines,
        "samples": settings.FORECAST_SAMPLES,
        "min_skill": settings.FORECAST_MIN_SKILL,
        "model": MODEL_VERSION,
        "stale": _stale(series, now, horizon),
    }
    return Prepared(vital, series, horizon, lines, context)


def run_forecast(patient_id: str, code: str, *, now: datetime | None = None) -> ForecastRun:
    """Forecast the patient's vital of LOINC ``code``; the stored run when the data is the same.

    Raises ``series.UnknownCode`` for a code that is not forecast, ``NotFound``/``Gone`` for a
    patient who is not (or no longer) there."""
    now = now or timezone.now()
    prepared = _prepare(patient_id, code, now)
    digest = prepared.digest()
    existing = _existing(patient_id, prepared.vital, digest)
    if existing is not None:
        return existing
    outcome = _compute(prepared.series, prepared.horizon, prepared.lines, now)
    return _save_once(prepared, digest, outcome, now)


def _save_once(prepared: Prepared, digest: str, outcome: Outcome, now: datetime) -> ForecastRun:
    """Store ``outcome`` unless a run of the same digest is there (then that run)."""
    patient_id, vital = prepared.series.patient_id, prepared.vital
    try:
        with transaction.atomic():
            _lock(patient_id, vital.code)
            existing = _existing(patient_id, vital, digest)
            if existing is not None:
                return existing
            return _store(prepared.series, vital, digest, prepared.horizon, outcome, now)
    except IntegrityError:
        # Another process stored the same run between our check and our insert.
        existing = _existing(patient_id, vital, digest)
        if existing is None:
            raise
        return existing


def record_failure(
    patient_id: str, code: str, reason: str, *, now: datetime | None = None
) -> ForecastRun:
    """Store a failed run of the series with ``reason`` (e.g. the task's time limit), shown to
    the clinician as a skipped run is. Its digest is the series' with the reason, so the same
    failure on the same data is stored once, and a later attempt on that data fits again
    rather than reusing the failure. The twin is not refreshed first: this runs when a task is
    out of time."""
    now = now or timezone.now()
    prepared = _prepare(patient_id, code, now, refresh=False)
    digest = prepared.digest(failed=reason)
    existing = _existing(patient_id, prepared.vital, digest)
    if existing is not None:
        return existing
    return _save_once(prepared, digest, Outcome(ForecastRun.FAILED, reason[:500]), now)


def _store(
    series: Series, vital: Vital, digest: str, horizon: int, outcome: Outcome, now: datetime
) -> ForecastRun:
    run = ForecastRun(
        patient_id=series.patient_id,
        code=vital.code,
        vital=vital.name,
        unit=vital.unit,
        granularity=vital.granularity,
        window_start=series.window_start,
        window_end=series.window_end,
        n_points=series.n_points,
        data_digest=digest,
        status=outcome.status,
        reason=outcome.reason,
        horizon=horizon,
        history=series.as_json(),
        **outcome.fields,
    )
    text = None
    if outcome.status == ForecastRun.DONE:
        run.basis = basis(series)
        assert series.window_end is not None
        end = series.window_end + STEP[vital.granularity] * horizon
        run.risk_assessment_id = fhir.risk_assessment(
            patient_id=series.patient_id,
            vital=vital,
            digest=digest,
            at=now,
            start=series.window_end,
            end=end,
            basis=run.basis,
            n_buckets=series.n_points,
            threshold=run.threshold,
            direction=run.direction,
            probability=run.probability,
            crossing_at=run.crossing_at,
            skill=run.skill,
            beats=run.beats_baseline,
            baseline=run.backtest.get("baseline"),
        )
        if warning.fires(outcome.warning, run.beats_baseline):
            assert outcome.warning is not None
            text = warning.summary(
                vital.label, vital.unit, outcome.warning, _horizon_text(vital, horizon)
            )
    run.save()
    warning.update_alert(series.patient_id, vital.name, text, now)
    return run


def forecast_patient(patient_id: str, *, now: datetime | None = None) -> list[ForecastRun]:
    """A run for each vital of the patient with data in its look-back window."""
    now = now or timezone.now()
    check_patient(patient_id)
    twin_services.refresh(patient_id)
    since = now - timedelta(days=90)
    return [
        run_forecast(patient_id, vital.code, now=now)
        for vital in vitals_with_data(patient_id, since)
    ]


def latest_run(patient_id: str, code: str) -> ForecastRun | None:
    vital = vital_for(code)
    return (
        ForecastRun.objects.filter(
            patient_id=patient_id, code=vital.code, granularity=vital.granularity
        )
        .order_by("-created", "-pk")
        .first()
    )


def queue_forecast(patient_id: str, code: str | None = None) -> list[Vital]:
    """Queue ``tasks.forecast_series`` for the patient's vital of LOINC ``code``, or for every
    vital with data in the last 90 days when ``code`` is None, sent once the transaction
    commits: "forecast now" of the admin and of the forecast page. Returns the vitals queued.

    Raises ``NotFound``/``Gone`` for a patient who is not (or no longer) there and
    ``BadRequest`` for a code that is not forecast or a patient with nothing to forecast."""
    check_patient(patient_id)
    if code:
        try:
            vitals = [vital_for(code)]
        except UnknownCode as error:
            raise BadRequest(str(error)) from None
    else:
        vitals = vitals_with_data(patient_id, timezone.now() - timedelta(days=90))
        if not vitals:
            raise BadRequest("No vital sign of this patient to forecast in the last 90 days")
    for vital in vitals:
        tasks.queue(patient_id, vital.code)
    return vitals
