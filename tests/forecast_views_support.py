"""Helpers of the forecast pages' tests: a patient's hourly vital aggregates as the twin keeps
them (``twins.models.VitalHour``, what ``forecasting.series`` reads), the twin's baseline from
them, and stored runs with chosen figures (for the fleet's ranking)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from forecasting.models import ForecastRun
from twins import state
from twins.models import PatientTwin, VitalHour

# The newest hour of the series: the last full hour, so that a forecast asked for now (the
# "forecast now" button and action run the service at the wall clock) finds the data fresh.
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def hourly(
    patient_id: str, vital: str, hours: int, value: Callable[[int], float], end: datetime = END
) -> None:
    """``hours`` hourly aggregates ending at ``end``, hour ``i`` (0 the oldest) of ``value(i)``."""
    start = end - timedelta(hours=hours - 1)
    rows = []
    for i in range(hours):
        v = value(i)
        rows.append(
            VitalHour(
                patient_id=patient_id,
                vital=vital,
                hour=start + timedelta(hours=i),
                n=1,
                total=v,
                low=v,
                high=v,
            )
        )
    VitalHour.objects.bulk_create(rows)


def daily_sine(seed: int, level: float = 75, amplitude: float = 10, trend: float = 0.0):
    """A daily sine plus a trend (per hour) plus a little noise, reproducible."""
    rng = random.Random(seed)

    def value(i: int) -> float:
        return level + amplitude * math.sin(2 * math.pi * i / 24) + trend * i + rng.gauss(0, 1)

    return value


def white_noise(seed: int, level: float = 75, sd: float = 6):
    rng = random.Random(seed)
    return lambda _i: level + rng.gauss(0, sd)


def with_baseline(patient_id: str, *vitals: str) -> PatientTwin:
    """The twin's personal baseline of ``vitals`` computed from the hourly aggregates, as the
    twin does when readings arrive (``twins.state.baseline``)."""
    twin, _ = PatientTwin.objects.get_or_create(patient_id=patient_id)
    for vital in vitals:
        twin.state.setdefault("baseline", {})[vital] = state.baseline(patient_id, vital, END)
    twin.save()
    return twin


def stored_run(patient_id: str, code: str = "8867-4", vital: str = "heart_rate", **fields):
    """A done run with a forecast, stored as the service stores one (for ranking tests)."""
    base = {
        "unit": "/min",
        "granularity": ForecastRun.HOURLY,
        "window_start": END - timedelta(days=30),
        "window_end": END,
        "n_points": 720,
        "data_digest": f"{patient_id}-{code}-{fields.get('probability')}-{fields.get('skill')}",
        "status": ForecastRun.DONE,
        "horizon": 48,
        "beats_baseline": True,
        "skill": 0.3,
        "threshold": 130.0,
        "direction": "above",
    }
    return ForecastRun.objects.create(
        patient_id=patient_id, code=code, vital=vital, **(base | fields)
    )
