"""Applying new Observations to a twin's state: constant work per reading.

``state`` (a JSON document on ``PatientTwin``):
- ``latest``: {vital: {"value", "time", "observation"}} — the newest by effective time, so an
  out-of-order reading that is older than what is known does not replace it;
- ``trend``: {vital: {"short", "long", "at"}} — exponentially weighted means with time
  constants of 1 h and 24 h: "short above long" is a rising vital;
- ``baseline``: {vital: {"median", "mad", "hours", "at"}} — median and MAD of the last 14 days
  of hourly means (``VitalHour``), recomputed when a new hour begins;
- ``devices``: {Device id: {"last_seen", "battery", "battery_at"}};
- ``events``: the latest device events (fall, irregular rhythm) with their times.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from fhir_api.search.dates import format_instant, parse_interval

from .models import VitalHour
from .vitals import effective, readings_of

BASELINE_DAYS = 14
SHORT_TAU, LONG_TAU = 3600.0, 86400.0
BASELINED = (
    "heart_rate",
    "respiratory_rate",
    "oxygen_saturation",
    "body_temperature",
    "systolic",
    "diastolic",
    "blood_glucose",
    "body_weight",
    "hrv_sdnn",
)


def _time(text: str) -> datetime:
    return parse_interval(text).low


def _ewma(
    previous: dict[str, Any] | None, value: float, at: datetime, last: datetime
) -> dict[str, Any]:
    """``last``: the time of ``previous`` (``previous["at"]``), parsed."""
    if previous is None:
        return {"short": value, "long": value, "at": format_instant(at)}
    dt = (at - last).total_seconds()
    if dt <= 0:  # an older reading arriving late moves the means as if it came now, a little
        dt = 1.0
    a_short = 1 - math.exp(-dt / SHORT_TAU)
    a_long = 1 - math.exp(-dt / LONG_TAU)
    return {
        "short": previous["short"] + a_short * (value - previous["short"]),
        "long": previous["long"] + a_long * (value - previous["long"]),
        "at": format_instant(max(at, last)),
    }


# A trend computed again (after a correction): hourly means stand in for the readings older
# than this many hours, whose weight in the 1-hour mean is then below e^-6 (0.25 %), and
# nothing older than TREND_DAYS counts (its weight in the 24-hour mean is below e^-7).
TREND_RAW_HOURS = 6
TREND_DAYS = 7


def recomputed_trend(
    hourly: Iterable[tuple[datetime, float]], readings: Iterable[tuple[datetime, float]]
) -> dict[str, Any] | None:
    """The trend of one vital computed again from its stored data, in time order: ``hourly``,
    (hour, mean) of the hours before the recent ones, each taken as one reading at the middle of
    its hour, then the recent ``readings`` themselves, (time, value). None without data."""
    trend = None
    last = None
    points = [(hour + timedelta(minutes=30), mean) for hour, mean in sorted(hourly)]
    for at, value in points + sorted(readings):
        trend = _ewma(trend, value, at, last or at)
        last = max(at, last or at)
    return trend


class Batch:
    """The hourly aggregates a batch of readings adds, written in one statement, and how many
    Observations of the batch changed the twin's state."""

    def __init__(self) -> None:
        self.hours: dict[tuple[str, datetime], list[float]] = defaultdict(list)
        self.applied = 0

    def add(self, vital: str, at: datetime, value: float) -> None:
        self.hours[(vital, at.replace(minute=0, second=0, microsecond=0))].append(value)

    def save(self, patient_id: str) -> set[str]:
        """Upsert the aggregates in one statement; the vitals that got a new hour (their
        baseline is due). The caller holds the twin's row lock, so the hours read first are
        still the hours there when the upsert runs."""
        if not self.hours:
            return set()
        keys = list(self.hours)
        existing = set(
            VitalHour.objects.filter(
                patient_id=patient_id,
                vital__in={vital for vital, _hour in keys},
                hour__gte=min(hour for _vital, hour in keys),
                hour__lte=max(hour for _vital, hour in keys),
            ).values_list("vital", "hour")
        )
        hour_field = VitalHour._meta.get_field("hour")
        params: list[Any] = []
        for (vital, hour), values in self.hours.items():
            params += [
                patient_id,
                vital,
                hour_field.get_db_prep_value(hour, connection),
                len(values),
                sum(values),
                min(values),
                max(values),
            ]
        least, greatest = ("MIN", "MAX") if connection.vendor == "sqlite" else ("LEAST", "GREATEST")
        table = VitalHour._meta.db_table
        rows = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(keys))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (patient_id, vital, hour, n, total, low, high)"
                f" VALUES {rows} ON CONFLICT (patient_id, vital, hour) DO UPDATE SET"
                f" n = {table}.n + excluded.n, total = {table}.total + excluded.total,"
                f" low = {least}({table}.low, excluded.low),"
                f" high = {greatest}({table}.high, excluded.high)",
                params,
            )
        return {vital for vital, hour in keys if (vital, hour) not in existing}


def baseline(patient_id: str, vital: str, now: datetime) -> dict[str, Any] | None:
    """Median and MAD of hourly means over the last 14 days; None with less than a day of data."""
    return baselines(patient_id, [vital], now)[vital]


def baselines(
    patient_id: str, vitals: Iterable[str], now: datetime
) -> dict[str, dict[str, Any] | None]:
    """``baseline`` of several vitals, read in one query."""
    wanted = list(vitals)
    means: dict[str, list[float]] = {vital: [] for vital in wanted}
    rows = VitalHour.objects.filter(
        patient_id=patient_id, vital__in=wanted, hour__gte=now - timedelta(days=BASELINE_DAYS)
    ).values_list("vital", "total", "n")
    for vital, total, n in rows:
        if n:
            means[vital].append(total / n)
    return {vital: _robust(values, now) for vital, values in means.items()}


def _robust(means: list[float], now: datetime) -> dict[str, Any] | None:
    if len(means) < 24:
        return None
    median = statistics.median(means)
    mad = statistics.median(abs(m - median) for m in means)
    return {
        "median": round(median, 2),
        "mad": round(mad, 3),
        "hours": len(means),
        "at": format_instant(now),
    }


def apply(
    state: dict[str, Any], observations: list[tuple[str, dict[str, Any]]], batch: Batch
) -> list[dict[str, Any]]:
    """Apply (observation id, JSON) pairs to ``state``; return the device events seen.

    ``batch.applied`` counts the Observations that changed the state (a vital, an event, a
    battery level or a device heard from): with none, the rules have nothing new to judge.
    Each instant in the state is parsed once per batch, each reading's time formatted once.
    """
    latest = state.setdefault("latest", {})
    trend = state.setdefault("trend", {})
    devices = state.setdefault("devices", {})
    events: list[dict[str, Any]] = []
    parsed: dict[str, datetime] = {}

    def when(text: str) -> datetime:
        moment = parsed.get(text)
        if moment is None:
            moment = parsed[text] = _time(text)
        return moment

    for obs_id, obs in observations:
        at = effective(obs)
        if at is None:
            continue
        stamp = format_instant(at)
        parsed[stamp] = at
        changed = False
        device = (
            obs.get("device", {}).get("reference", "").split("/", 1)[-1]
            if isinstance(obs.get("device"), dict)
            else ""
        )
        if device:
            seen = devices.setdefault(device, {})
            changed = True
            if "last_seen" not in seen or when(seen["last_seen"]) < at:
                seen["last_seen"] = stamp
        for vital, value in readings_of(obs):
            if vital in ("fall", "irregular_rhythm"):
                events.append({"type": vital, "time": stamp, "observation": obs_id})
                state.setdefault("events", {})[vital] = {"time": stamp, "observation": obs_id}
                changed = True
                continue
            if vital == "battery":
                if device and value is not None:
                    seen = devices.setdefault(device, {})
                    if "battery_at" not in seen or when(seen["battery_at"]) <= at:
                        previous = seen.get("battery"), seen.get("battery_at")
                        seen["battery"], seen["battery_at"] = value, stamp
                        if previous[0] is not None and previous[1]:
                            hours = (at - when(previous[1])).total_seconds() / 3600
                            if hours > 0:
                                seen["drain_per_hour"] = round((previous[0] - value) / hours, 2)
                continue
            if value is None:
                continue
            changed = True
            current = latest.get(vital)
            if current is None or when(current["time"]) <= at:
                latest[vital] = {"value": value, "time": stamp, "observation": obs_id}
            previous = trend.get(vital)
            trend[vital] = _ewma(previous, value, at, when(previous["at"]) if previous else at)
            batch.add(vital, at, value)
        if changed:
            batch.applied += 1
    return events
