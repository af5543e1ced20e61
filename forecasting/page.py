"""What the per-patient forecast page shows: the latest run of each of the patient's series.

For each vital forecast (``ForecastRun``, newest per LOINC code): the series the model saw and
the forecast with its 80% and 95% intervals, as chart data; the alert thresholds in force and
the personal baseline band (from the twin, ``twins.series``); the rolling-origin backtest (MAE
and MAPE of prophet, the naive and the seasonal naive forecast, the skill score); the early
warning (probability that the vital crosses the threshold within the horizon, and when).

A run that does not beat its better baseline is flagged ``trusted = False``: the page says so
and shows no early warning from it, as the predicted alerts do not fire from it. Its output
is the FHIR RiskAssessment (hl7.org/fhir/R4B/riskassessment.html) the run wrote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import OuterRef, Subquery
from django.utils import timezone

from fhir_api.search.dates import parse_interval
from twins.display import number, unit_label
from twins.models import PatientTwin
from twins.patients import PatientFacts, patient_facts
from twins.series import baseline_band, thresholds
from twins.vitals import LABELS, UNITS

from .models import ForecastRun

# How much of the series the model saw is drawn before the forecast.
RECENT = {ForecastRun.HOURLY: timedelta(days=7), ForecastRun.DAILY: timedelta(days=60)}
BACKTEST_MODELS = (
    ("prophet", "Prophet"),
    ("naive", "Naive (last value)"),
    ("seasonal_naive", "Seasonal naive (same time one season ago)"),
    ("mean", "Mean of the history"),
)
STEP_NAMES = {ForecastRun.HOURLY: ("hour", "hours"), ForecastRun.DAILY: ("day", "days")}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _instant_ms(text: Any) -> int | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return ms(parse_interval(text).low)
    except ValueError:
        return None


def _value(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def percent(probability: float | None) -> str:
    """A probability as the pages show it: whole percent, halves rounded up (0.5 % → 1 %)."""
    if probability is None:
        return ""
    return f"{math.floor(probability * 100 + 0.5):.0f} %"


def vital_label(run: ForecastRun) -> str:
    return LABELS.get(run.vital, run.vital.replace("_", " ") or run.code)


def unit_of(run: ForecastRun) -> str:
    return unit_label(run.unit or UNITS.get(run.vital, ""))


def horizon_text(run: ForecastRun) -> str:
    one, many = STEP_NAMES.get(run.granularity, ("step", "steps"))
    return f"{run.horizon} {one if run.horizon == 1 else many}"


def backtest_rows(run: ForecastRun) -> list[dict[str, Any]]:
    """One row per model of the backtest that has figures: name, MAE, MAPE (%), and whether
    it is the better baseline the skill is measured against."""
    rows = []
    figures = run.backtest if isinstance(run.backtest, dict) else {}
    better = figures.get("baseline")
    for key, label in BACKTEST_MODELS:
        entry = figures.get(key)
        if not isinstance(entry, dict):
            continue
        mae, mape = _value(entry.get("mae")), _value(entry.get("mape"))
        rows.append(
            {
                "model": key,
                "label": label,
                "mae": "—" if mae is None else f"{mae:.2f}",
                "mape": "—" if mape is None else f"{mape:.1f} %",
                "baseline": key == better,
            }
        )
    return rows


def chart_data(run: ForecastRun, twin: PatientTwin | None) -> dict[str, Any]:
    """The chart of one run: recent history, forecast and intervals, thresholds, baseline."""
    history = [
        [at, _value(value)]
        for at, value in (
            (_instant_ms(item[0]), item[1] if len(item) > 1 else None)
            for item in (run.history or [])
            if isinstance(item, list | tuple) and item
        )
        if at is not None
    ]
    points = []
    for item in run.points or []:
        at = _instant_ms(item.get("t")) if isinstance(item, dict) else None
        if at is None:
            continue
        points.append(
            {
                "x": at,
                **{k: _value(item.get(k)) for k in ("yhat", "lo80", "hi80", "lo95", "hi95")},
            }
        )
    end = points[-1]["x"] if points else (history[-1][0] if history else None)
    last_seen = ms(run.window_end) if run.window_end else None
    if last_seen is None and history:
        last_seen = history[-1][0]
    recent_from = (
        last_seen
        - int(RECENT.get(run.granularity, RECENT[ForecastRun.HOURLY]).total_seconds()) * 1000
        if last_seen is not None
        else None
    )
    if recent_from is not None:
        history = [h for h in history if h[0] >= recent_from]
    lines = thresholds(twin, run.vital) if twin else []
    if not lines and run.threshold is not None:
        lines = [
            {
                "value": run.threshold,
                "label": f"alert {run.direction or 'at'} {run.threshold:g}",
                "kind": "low" if run.direction == "below" else "high",
            }
        ]
    return {
        "code": run.code,
        "vital": run.vital,
        "label": vital_label(run),
        "unit": unit_of(run),
        "granularity": run.granularity,
        "start": history[0][0] if history else (points[0]["x"] if points else None),
        "end": end,
        "now": last_seen,
        "history": history,
        "forecast": points,
        "lines": lines,
        "baseline": baseline_band(twin, run.vital) if twin else None,
        "crossing": ms(run.crossing_at) if run.crossing_at else None,
        "threshold": run.threshold,
        "trusted": run.beats_baseline,
    }


@dataclass
class RunView:
    """One run as the page shows it."""

    run: ForecastRun
    label: str
    unit: str
    horizon: str
    trusted: bool
    backtest: list[dict[str, Any]] = field(default_factory=list)
    skill: str = ""
    probability: str = ""
    crossing_at: datetime | None = None
    threshold: str = ""
    chart: dict[str, Any] | None = None

    @property
    def anchor(self) -> str:
        return f"vital-{self.run.code}"


def run_view(run: ForecastRun, twin: PatientTwin | None) -> RunView:
    done = run.status == ForecastRun.DONE
    view = RunView(
        run=run,
        label=vital_label(run),
        unit=unit_of(run),
        horizon=horizon_text(run),
        trusted=done and run.beats_baseline,
    )
    if not done:
        return view
    view.backtest = backtest_rows(run)
    view.skill = "—" if run.skill is None else f"{run.skill:+.2f}"
    view.probability = percent(run.probability)
    view.crossing_at = run.crossing_at
    if run.threshold is not None:
        view.threshold = (
            f"{run.direction or 'crossing'} {number(run.threshold)} {view.unit}".strip()
        )
    view.chart = chart_data(run, twin)
    return view


def latest_per_series():
    """The newest run of each series (patient, code): one probe of the index ``forecast_latest``
    per series, so older runs (and their stored series) are never read."""
    newest = (
        ForecastRun.objects.filter(patient_id=OuterRef("patient_id"), code=OuterRef("code"))
        .order_by("-created", "-id")
        .values("id")[:1]
    )
    return ForecastRun.objects.filter(id=Subquery(newest))


def latest_runs(patient_id: str) -> list[ForecastRun]:
    """The newest run of each of the patient's series (LOINC code), in the twin's vital order."""
    order = list(LABELS)
    return sorted(
        latest_per_series().filter(patient_id=patient_id),
        key=lambda r: (order.index(r.vital) if r.vital in order else len(order), r.code),
    )


def patient_forecasts(patient_id: str, now: datetime | None = None) -> dict[str, Any] | None:
    """Everything the forecast page of ``patient_id`` shows; None for an unknown patient."""
    now = now or timezone.now()
    facts = patient_facts([patient_id], now.date()).get(patient_id)
    runs = latest_runs(patient_id)
    if facts is None and not runs:
        return None
    twin = PatientTwin.objects.filter(patient_id=patient_id).first()
    views = [run_view(run, twin) for run in runs]
    return {
        "patient": facts or PatientFacts(patient_id, f"Patient/{patient_id}"),
        "twin": twin,
        "runs": views,
        "charts": [v.chart for v in views if v.chart],
    }
