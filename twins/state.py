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
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F
from django.db.models.functions import Greatest, Least

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


def _ewma(previous: dict[str, Any] | None, value: float, at: datetime) -> dict[str, Any]:
    if previous is None:
        return {"short": value, "long": value, "at": format_instant(at)}
    last = _time(previous["at"])
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


class Batch:
    """The hourly aggregates a batch of readings adds, written with one statement per hour."""

    def __init__(self) -> None:
        self.hours: dict[tuple[str, datetime], list[float]] = defaultdict(list)

    def add(self, vital: str, at: datetime, value: float) -> None:
        self.hours[(vital, at.replace(minute=0, second=0, microsecond=0))].append(value)

    def save(self, patient_id: str) -> set[str]:
        """Upsert the aggregates; the vitals that got a new hour (their baseline is due)."""
        new_hours = set()
        for (vital, hour), values in self.hours.items():
            updated = VitalHour.objects.filter(
                patient_id=patient_id, vital=vital, hour=hour
            ).update(
                n=F("n") + len(values),
                total=F("total") + sum(values),
                low=Least(F("low"), min(values)),
                high=Greatest(F("high"), max(values)),
            )
            if not updated:
                VitalHour.objects.create(
                    patient_id=patient_id,
                    vital=vital,
                    hour=hour,
                    n=len(values),
                    total=sum(values),
                    low=min(values),
                    high=max(values),
                )
                new_hours.add(vital)
        return new_hours


def baseline(patient_id: str, vital: str, now: datetime) -> dict[str, Any] | None:
    """Median and MAD of hourly means over the last 14 days; None with less than a day of data."""
    rows = VitalHour.objects.filter(
        patient_id=patient_id, vital=vital, hour__gte=now - timedelta(days=BASELINE_DAYS)
    )
    means = [total / n for total, n in rows.values_list("total", "n") if n]
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
    """Apply (observation id, JSON) pairs to ``state``; return the device events seen."""
    latest = state.setdefault("latest", {})
    trend = state.setdefault("trend", {})
    devices = state.setdefault("devices", {})
    events: list[dict[str, Any]] = []
    for obs_id, obs in observations:
        at = effective(obs)
        if at is None:
            continue
        device = (
            obs.get("device", {}).get("reference", "").split("/", 1)[-1]
            if isinstance(obs.get("device"), dict)
            else ""
        )
        if device:
            seen = devices.setdefault(device, {})
            if "last_seen" not in seen or _time(seen["last_seen"]) < at:
                seen["last_seen"] = format_instant(at)
        for vital, value in readings_of(obs):
            if vital in ("fall", "irregular_rhythm"):
                events.append({"type": vital, "time": format_instant(at), "observation": obs_id})
                state.setdefault("events", {})[vital] = {
                    "time": format_instant(at),
                    "observation": obs_id,
                }
                continue
            if vital == "battery":
                if device and value is not None:
                    seen = devices.setdefault(device, {})
                    if "battery_at" not in seen or _time(seen["battery_at"]) <= at:
                        previous = seen.get("battery"), seen.get("battery_at")
                        seen["battery"], seen["battery_at"] = value, format_instant(at)
                        if previous[0] is not None and previous[1]:
                            hours = (at - _time(previous[1])).total_seconds() / 3600
                            if hours > 0:
                                seen["drain_per_hour"] = round((previous[0] - value) / hours, 2)
                continue
            if value is None:
                continue
            current = latest.get(vital)
            if current is None or _time(current["time"]) <= at:
                latest[vital] = {"value": value, "time": format_instant(at), "observation": obs_id}
            trend[vital] = _ewma(trend.get(vital), value, at)
            batch.add(vital, at, value)
    return events
